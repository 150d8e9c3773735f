import type Database from 'better-sqlite3';
import { TributaryError } from '../../shared/errors.ts';
import type { Enrollment, EnrollmentStore, EnrollmentToken } from '../auth/model.ts';
import { toEnrollment, toToken, type EnrollmentRow, type TokenRow } from './rows/enrollments.ts';

export class SqliteEnrollments implements EnrollmentStore {
  constructor(private readonly db: Database.Database) {}

  async createToken(t: Omit<EnrollmentToken, 'id' | 'createdAt' | 'revokedAt' | 'uses'>): Promise<EnrollmentToken> {
    const info = this.db
      .prepare('INSERT INTO enrollment_tokens (task_id, kind, label, token_hash, created_by, created_at, expires_at, max_uses) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(t.taskId, t.kind, t.label, t.tokenHash, t.createdBy, new Date().toISOString(), t.expiresAt, t.maxUses);
    return (await this.tokenById(Number(info.lastInsertRowid)))!;
  }

  async tokenByHash(tokenHash: string): Promise<EnrollmentToken | undefined> {
    const row = this.db.prepare('SELECT * FROM enrollment_tokens WHERE token_hash = ?').get(tokenHash) as TokenRow | undefined;
    return row && toToken(row);
  }

  async tokenById(id: number): Promise<EnrollmentToken | undefined> {
    const row = this.db.prepare('SELECT * FROM enrollment_tokens WHERE id = ?').get(id) as TokenRow | undefined;
    return row && toToken(row);
  }

  async listTokens(taskId: number): Promise<EnrollmentToken[]> {
    return (this.db.prepare('SELECT * FROM enrollment_tokens WHERE task_id = ? ORDER BY id').all(taskId) as TokenRow[]).map(toToken);
  }

  async revokeToken(id: number): Promise<string[]> {
    const now = new Date().toISOString();
    return this.db.transaction(() => {
      this.db.prepare('UPDATE enrollment_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(now, id);
      const revoked = this.db.prepare('UPDATE enrollments SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL RETURNING identity_key').all(now, id) as Array<{ identity_key: string }>;
      return revoked.map((r) => r.identity_key);
    })();
  }

  async enroll(e: Omit<Enrollment, 'createdAt' | 'revokedAt'>): Promise<Enrollment> {
    return this.db.transaction(() => {
      const existing = this.db.prepare('SELECT * FROM enrollments WHERE task_id = ? AND identity_key = ?').get(e.taskId, e.identityKey) as EnrollmentRow | undefined;
      // Revoked means out until an operator says otherwise: a token or open enrollment must not undo it.
      if (existing?.revoked_at) throw new TributaryError('NOT_ENROLLED', 'this device\'s enrollment was revoked; an operator must restore it');
      if (existing) return toEnrollment(existing);
      const now = new Date().toISOString();
      // The token's use is counted only if it is still usable, in the same step: racing enrollments cannot overdraw it.
      if (e.tokenId !== null) {
        const counted = this.db
          .prepare('UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) AND (max_uses = 0 OR uses < max_uses)')
          .run(e.tokenId, now);
        if (counted.changes === 0) throw new TributaryError('ENROLLMENT_TOKEN_INVALID', 'revoked, expired or used up');
      }
      this.db
        .prepare('INSERT INTO enrollments (task_id, identity_key, kind, token_id, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, NULL)')
        .run(e.taskId, e.identityKey, e.kind, e.tokenId, now);
      return toEnrollment(this.db.prepare('SELECT * FROM enrollments WHERE task_id = ? AND identity_key = ?').get(e.taskId, e.identityKey) as EnrollmentRow);
    })();
  }

  async enrollment(taskId: number, identityKey: string): Promise<Enrollment | undefined> {
    const row = this.db.prepare('SELECT * FROM enrollments WHERE task_id = ? AND identity_key = ?').get(taskId, identityKey) as EnrollmentRow | undefined;
    return row && toEnrollment(row);
  }

  async listEnrollments(taskId: number): Promise<Enrollment[]> {
    return (this.db.prepare('SELECT * FROM enrollments WHERE task_id = ? ORDER BY created_at').all(taskId) as EnrollmentRow[]).map(toEnrollment);
  }

  async revokeEnrollment(taskId: number, identityKey: string): Promise<boolean> {
    const info = this.db
      .prepare('UPDATE enrollments SET revoked_at = ? WHERE task_id = ? AND identity_key = ? AND revoked_at IS NULL')
      .run(new Date().toISOString(), taskId, identityKey);
    return info.changes > 0;
  }

  async restoreEnrollment(taskId: number, identityKey: string): Promise<boolean> {
    const info = this.db.prepare('UPDATE enrollments SET revoked_at = NULL WHERE task_id = ? AND identity_key = ? AND revoked_at IS NOT NULL').run(taskId, identityKey);
    return info.changes > 0;
  }
}
