import type Database from 'better-sqlite3';
import type { AccountStore, ApiToken, Session, User } from '../auth/model.ts';
import { USER_COLUMNS, toApiToken, toSession, toUser, type ApiTokenRow, type SessionRow, type UserPatch, type UserRow } from './rows/accounts.ts';

export class SqliteAccounts implements AccountStore {
  constructor(private readonly db: Database.Database) {}

  async countActiveAdmins(): Promise<number> {
    return (this.db.prepare("SELECT COUNT(*) AS n FROM users WHERE role = 'admin' AND disabled = 0").get() as { n: number }).n;
  }

  async createUser(user: Omit<User, 'id' | 'createdAt'>): Promise<User> {
    const info = this.db
      .prepare('INSERT INTO users (username, role, password_hash, totp_secret, totp_last_step, recovery_hashes, disabled, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(user.username, user.role, user.passwordHash, user.totpSecret, user.totpLastStep, JSON.stringify(user.recoveryHashes), user.disabled ? 1 : 0, new Date().toISOString());
    return (await this.userById(Number(info.lastInsertRowid)))!;
  }

  async userById(id: number): Promise<User | undefined> {
    const row = this.db.prepare('SELECT * FROM users WHERE id = ?').get(id) as UserRow | undefined;
    return row && toUser(row);
  }

  async userByName(username: string): Promise<User | undefined> {
    const row = this.db.prepare('SELECT * FROM users WHERE username = ?').get(username) as UserRow | undefined;
    return row && toUser(row);
  }

  async listUsers(): Promise<User[]> {
    return (this.db.prepare('SELECT * FROM users ORDER BY id').all() as UserRow[]).map(toUser);
  }

  async updateUser(id: number, patch: UserPatch): Promise<void> {
    for (const [key, value] of Object.entries(patch)) {
      const column = USER_COLUMNS[key as keyof typeof USER_COLUMNS];
      const stored = key === 'recoveryHashes' ? JSON.stringify(value) : key === 'disabled' ? (value ? 1 : 0) : value;
      this.db.prepare(`UPDATE users SET ${column} = ? WHERE id = ?`).run(stored, id);
    }
  }

  async consumeTotpStep(userId: number, step: number): Promise<boolean> {
    return this.db.prepare('UPDATE users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?').run(step, userId, step).changes > 0;
  }

  async consumeRecoveryHash(userId: number, hash: string): Promise<number | undefined> {
    // One statement: the check that the hash is there and its removal cannot be split by another login.
    const row = this.db
      .prepare(`UPDATE users SET recovery_hashes = (SELECT json_group_array(value ORDER BY key) FROM json_each(users.recovery_hashes) WHERE value <> @hash)
        WHERE id = @userId AND EXISTS (SELECT 1 FROM json_each(users.recovery_hashes) WHERE value = @hash)
        RETURNING json_array_length(recovery_hashes) AS remaining`)
      .get({ userId, hash }) as { remaining: number } | undefined;
    return row?.remaining;
  }

  async createSession(s: Session): Promise<void> {
    this.db
      .prepare('INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(s.idHash, s.userId, s.csrfToken, s.createdAt, s.expiresAt, s.lastSeenAt);
  }

  async sessionByHash(idHash: string): Promise<Session | undefined> {
    const row = this.db.prepare('SELECT * FROM sessions WHERE id_hash = ?').get(idHash) as SessionRow | undefined;
    return row && toSession(row);
  }

  async touchSession(idHash: string, lastSeenAt: number): Promise<void> {
    this.db.prepare('UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?').run(lastSeenAt, idHash);
  }

  async deleteSession(idHash: string): Promise<void> {
    this.db.prepare('DELETE FROM sessions WHERE id_hash = ?').run(idHash);
  }

  async deleteSessionsOf(userId: number): Promise<void> {
    this.db.prepare('DELETE FROM sessions WHERE user_id = ?').run(userId);
  }

  async deleteExpiredSessions(expiresBefore: number, seenBefore: number): Promise<string[]> {
    const rows = this.db.prepare('DELETE FROM sessions WHERE expires_at < ? OR last_seen_at < ? RETURNING id_hash').all(expiresBefore, seenBefore) as Array<{ id_hash: string }>;
    return rows.map((r) => r.id_hash);
  }

  async createApiToken(t: Omit<ApiToken, 'id' | 'createdAt' | 'revokedAt'>): Promise<ApiToken> {
    const info = this.db
      .prepare('INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?)')
      .run(t.userId, t.name, t.tokenHash, new Date().toISOString());
    return toApiToken(this.db.prepare('SELECT * FROM api_tokens WHERE id = ?').get(Number(info.lastInsertRowid)) as ApiTokenRow);
  }

  async apiTokenByHash(tokenHash: string): Promise<ApiToken | undefined> {
    const row = this.db.prepare('SELECT * FROM api_tokens WHERE token_hash = ?').get(tokenHash) as ApiTokenRow | undefined;
    return row && toApiToken(row);
  }

  async listApiTokens(userId: number): Promise<ApiToken[]> {
    return (this.db.prepare('SELECT * FROM api_tokens WHERE user_id = ? ORDER BY id').all(userId) as ApiTokenRow[]).map(toApiToken);
  }

  async revokeApiToken(id: number, userId: number): Promise<boolean> {
    const info = this.db.prepare('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL').run(new Date().toISOString(), id, userId);
    return info.changes > 0;
  }
}
