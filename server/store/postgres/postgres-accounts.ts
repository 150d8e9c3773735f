import type { AccountStore, ApiToken, Session, User } from '../../auth/model.ts';
import { USER_COLUMNS, toApiToken, toSession, toUser, type ApiTokenRow, type SessionRow, type UserPatch, type UserRow } from '../rows/accounts.ts';
import type { PostgresDatabase } from './database.ts';

/** Users, sessions and API tokens in PostgreSQL. A second user of one name is USER_EXISTS, even between racing creators. */
export class PostgresAccounts implements AccountStore {
  constructor(private readonly db: PostgresDatabase) {}

  async countActiveAdmins(): Promise<number> {
    return (await this.db.row<{ n: number }>("SELECT COUNT(*) AS n FROM users WHERE role = 'admin' AND NOT disabled"))!.n;
  }

  async createUser(user: Omit<User, 'id' | 'createdAt'>): Promise<User> {
    const row = await this.db.row<UserRow>(
      `INSERT INTO users (username, role, password_hash, totp_secret, totp_last_step, recovery_hashes, disabled, created_at)
       VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8) RETURNING *`,
      [user.username, user.role, user.passwordHash, user.totpSecret, user.totpLastStep, JSON.stringify(user.recoveryHashes), user.disabled, new Date().toISOString()],
    );
    return toUser(row!);
  }

  async userById(id: number): Promise<User | undefined> {
    const row = await this.db.row<UserRow>('SELECT * FROM users WHERE id = $1', [id]);
    return row && toUser(row);
  }

  async userByName(username: string): Promise<User | undefined> {
    const row = await this.db.row<UserRow>('SELECT * FROM users WHERE username = $1', [username]);
    return row && toUser(row);
  }

  async listUsers(): Promise<User[]> {
    return (await this.db.rows<UserRow>('SELECT * FROM users ORDER BY id')).map(toUser);
  }

  /** One statement for the whole patch: no reader sees half of it. */
  async updateUser(id: number, patch: UserPatch): Promise<void> {
    const fields = Object.entries(patch).filter(([key, value]) => Object.hasOwn(USER_COLUMNS, key) && value !== undefined) as Array<[keyof UserPatch, unknown]>;
    if (fields.length === 0) return;
    const sets = fields.map(([key], i) => `${USER_COLUMNS[key]} = $${i + 2}`);
    const values = fields.map(([key, value]) => (key === 'recoveryHashes' ? JSON.stringify(value) : value));
    await this.db.changes(`UPDATE users SET ${sets.join(', ')} WHERE id = $1`, [id, ...values]);
  }

  async consumeTotpStep(userId: number, step: number): Promise<boolean> {
    // Concurrent updates of one row queue on its lock, and each re-checks the condition on the row the last one left.
    return (await this.db.changes('UPDATE users SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2', [userId, step])) > 0;
  }

  async consumeRecoveryHash(userId: number, hash: string): Promise<number | undefined> {
    // One statement: the check that the hash is there and its removal cannot be split by another login.
    const row = await this.db.row<{ remaining: number }>(
      `UPDATE users SET recovery_hashes = recovery_hashes - $2::text
       WHERE id = $1 AND recovery_hashes ? $2::text
       RETURNING jsonb_array_length(recovery_hashes) AS remaining`,
      [userId, hash],
    );
    return row?.remaining;
  }

  async createSession(s: Session): Promise<void> {
    await this.db.changes('INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6)', [
      s.idHash, s.userId, s.csrfToken, s.createdAt, s.expiresAt, s.lastSeenAt,
    ]);
  }

  async sessionByHash(idHash: string): Promise<Session | undefined> {
    const row = await this.db.row<SessionRow>('SELECT * FROM sessions WHERE id_hash = $1', [idHash]);
    return row && toSession(row);
  }

  async touchSession(idHash: string, lastSeenAt: number): Promise<void> {
    await this.db.changes('UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1', [idHash, lastSeenAt]);
  }

  async deleteSession(idHash: string): Promise<void> {
    await this.db.changes('DELETE FROM sessions WHERE id_hash = $1', [idHash]);
  }

  async deleteSessionsOf(userId: number): Promise<void> {
    await this.db.changes('DELETE FROM sessions WHERE user_id = $1', [userId]);
  }

  async deleteExpiredSessions(expiresBefore: number, seenBefore: number): Promise<string[]> {
    const rows = await this.db.rows<{ id_hash: string }>('DELETE FROM sessions WHERE expires_at < $1 OR last_seen_at < $2 RETURNING id_hash', [expiresBefore, seenBefore]);
    return rows.map((r) => r.id_hash);
  }

  async createApiToken(t: Omit<ApiToken, 'id' | 'createdAt' | 'revokedAt'>): Promise<ApiToken> {
    const row = await this.db.row<ApiTokenRow>('INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING *', [
      t.userId, t.name, t.tokenHash, new Date().toISOString(),
    ]);
    return toApiToken(row!);
  }

  async apiTokenByHash(tokenHash: string): Promise<ApiToken | undefined> {
    const row = await this.db.row<ApiTokenRow>('SELECT * FROM api_tokens WHERE token_hash = $1', [tokenHash]);
    return row && toApiToken(row);
  }

  async listApiTokens(userId: number): Promise<ApiToken[]> {
    return (await this.db.rows<ApiTokenRow>('SELECT * FROM api_tokens WHERE user_id = $1 ORDER BY id', [userId])).map(toApiToken);
  }

  async revokeApiToken(id: number, userId: number): Promise<boolean> {
    const changed = await this.db.changes('UPDATE api_tokens SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL', [id, userId, new Date().toISOString()]);
    return changed > 0;
  }
}
