import { TributaryError } from '../../../shared/errors.ts';
import type { Enrollment, EnrollmentStore, EnrollmentToken } from '../../auth/model.ts';
import { toEnrollment, toToken, type EnrollmentRow, type TokenRow } from '../rows/enrollments.ts';
import type { PostgresDatabase } from './database.ts';

/** The binding as it stands: revoked means out until an operator says otherwise, so a token or open enrollment must not undo it. */
function existingBinding(row: EnrollmentRow): Enrollment {
  if (row.revoked_at) throw new TributaryError('NOT_ENROLLED', "this device's enrollment was revoked; an operator must restore it");
  return toEnrollment(row);
}

const BINDING = 'SELECT * FROM enrollments WHERE task_id = $1 AND identity_key = $2';

/** Enrollment tokens and the identity keys bound with them, in PostgreSQL. */
export class PostgresEnrollments implements EnrollmentStore {
  constructor(private readonly db: PostgresDatabase) {}

  async createToken(t: Omit<EnrollmentToken, 'id' | 'createdAt' | 'revokedAt' | 'uses'>): Promise<EnrollmentToken> {
    const row = await this.db.row<TokenRow>(
      `INSERT INTO enrollment_tokens (task_id, kind, label, token_hash, created_by, created_at, expires_at, max_uses)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
      [t.taskId, t.kind, t.label, t.tokenHash, t.createdBy, new Date().toISOString(), t.expiresAt, t.maxUses],
    );
    return toToken(row!);
  }

  async tokenByHash(tokenHash: string): Promise<EnrollmentToken | undefined> {
    const row = await this.db.row<TokenRow>('SELECT * FROM enrollment_tokens WHERE token_hash = $1', [tokenHash]);
    return row && toToken(row);
  }

  async tokenById(id: number): Promise<EnrollmentToken | undefined> {
    const row = await this.db.row<TokenRow>('SELECT * FROM enrollment_tokens WHERE id = $1', [id]);
    return row && toToken(row);
  }

  async listTokens(taskId: number): Promise<EnrollmentToken[]> {
    return (await this.db.rows<TokenRow>('SELECT * FROM enrollment_tokens WHERE task_id = $1 ORDER BY id', [taskId])).map(toToken);
  }

  async revokeToken(id: number): Promise<string[]> {
    const now = new Date().toISOString();
    return this.db.transaction(async (tx) => {
      await tx.changes('UPDATE enrollment_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL', [id, now]);
      const revoked = await tx.rows<{ identity_key: string }>(
        'UPDATE enrollments SET revoked_at = $2 WHERE token_id = $1 AND revoked_at IS NULL RETURNING identity_key',
        [id, now],
      );
      return revoked.map((r) => r.identity_key);
    });
  }

  /**
   * Counts the token's use and inserts the binding in one transaction. Two devices racing
   * with one key: the second insert waits for the first to commit and then inserts
   * nothing, so the second rolls its use back and answers the first one's binding.
   */
  async enroll(e: Omit<Enrollment, 'createdAt' | 'revokedAt'>): Promise<Enrollment> {
    const bound = await this.db.row<EnrollmentRow>(BINDING, [e.taskId, e.identityKey]);
    if (bound) return existingBinding(bound);
    const made = await this.db
      .transaction(async (tx) => {
        const now = new Date().toISOString();
        // The use is counted only if the token is still usable, in the same step: racing enrollments cannot overdraw it.
        if (e.tokenId !== null) {
          const counted = await tx.changes(
            `UPDATE enrollment_tokens SET uses = uses + 1
             WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2) AND (max_uses = 0 OR uses < max_uses)`,
            [e.tokenId, now],
          );
          if (counted === 0) throw new TributaryError('ENROLLMENT_TOKEN_INVALID', 'revoked, expired or used up');
        }
        const inserted = await tx.row<EnrollmentRow>(
          `INSERT INTO enrollments (task_id, identity_key, kind, token_id, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, NULL)
           ON CONFLICT (task_id, identity_key) DO NOTHING RETURNING *`,
          [e.taskId, e.identityKey, e.kind, e.tokenId, now],
        );
        if (!inserted) throw new LostRace();
        return toEnrollment(inserted);
      })
      .catch((error: unknown) => {
        if (error instanceof LostRace) return undefined;
        throw error;
      });
    if (made) return made;
    return existingBinding((await this.db.row<EnrollmentRow>(BINDING, [e.taskId, e.identityKey]))!);
  }

  async enrollment(taskId: number, identityKey: string): Promise<Enrollment | undefined> {
    const row = await this.db.row<EnrollmentRow>(BINDING, [taskId, identityKey]);
    return row && toEnrollment(row);
  }

  async listEnrollments(taskId: number): Promise<Enrollment[]> {
    return (await this.db.rows<EnrollmentRow>('SELECT * FROM enrollments WHERE task_id = $1 ORDER BY created_at, identity_key', [taskId])).map(toEnrollment);
  }

  async revokeEnrollment(taskId: number, identityKey: string): Promise<boolean> {
    const changed = await this.db.changes('UPDATE enrollments SET revoked_at = $3 WHERE task_id = $1 AND identity_key = $2 AND revoked_at IS NULL', [
      taskId, identityKey, new Date().toISOString(),
    ]);
    return changed > 0;
  }

  async restoreEnrollment(taskId: number, identityKey: string): Promise<boolean> {
    const changed = await this.db.changes('UPDATE enrollments SET revoked_at = NULL WHERE task_id = $1 AND identity_key = $2 AND revoked_at IS NOT NULL', [
      taskId, identityKey,
    ]);
    return changed > 0;
  }
}

/** Another enrollment bound the key first: this one's transaction rolls back. */
class LostRace extends Error {}
