import type { AccountStore, ApiToken, Role, Session, User } from '../../auth/model.ts';

/**
 * A `users` row. Two columns are stored differently by the backends, and `toUser` reads
 * either: `recovery_hashes` is JSON text in SQLite and JSONB (which pg parses) in
 * PostgreSQL; `disabled` is 0/1 in SQLite and BOOLEAN in PostgreSQL.
 */
export interface UserRow {
  id: number;
  username: string;
  role: Role;
  password_hash: string;
  totp_secret: string;
  totp_last_step: number;
  recovery_hashes: string | string[];
  disabled: number | boolean;
  created_at: string;
}

export const toUser = (r: UserRow): User => ({
  id: r.id,
  username: r.username,
  role: r.role,
  passwordHash: r.password_hash,
  totpSecret: r.totp_secret,
  totpLastStep: r.totp_last_step,
  recoveryHashes: typeof r.recovery_hashes === 'string' ? (JSON.parse(r.recovery_hashes) as string[]) : r.recovery_hashes,
  disabled: r.disabled === true || r.disabled === 1,
  createdAt: r.created_at,
});

export type UserPatch = Parameters<AccountStore['updateUser']>[1];

/** The column behind each field `updateUser` may change. */
export const USER_COLUMNS = {
  role: 'role',
  disabled: 'disabled',
  totpLastStep: 'totp_last_step',
  recoveryHashes: 'recovery_hashes',
  passwordHash: 'password_hash',
  totpSecret: 'totp_secret',
} as const satisfies Record<keyof UserPatch, string>;

/** A `sessions` row; its times are millisecond numbers (INTEGER in SQLite, BIGINT read as a number in PostgreSQL). */
export interface SessionRow {
  id_hash: string;
  user_id: number;
  csrf_token: string;
  created_at: number;
  expires_at: number;
  last_seen_at: number;
}

export const toSession = (r: SessionRow): Session => ({
  idHash: r.id_hash,
  userId: r.user_id,
  csrfToken: r.csrf_token,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  lastSeenAt: r.last_seen_at,
});

export interface ApiTokenRow {
  id: number;
  user_id: number;
  name: string;
  token_hash: string;
  created_at: string;
  revoked_at: string | null;
}

export const toApiToken = (r: ApiTokenRow): ApiToken => ({
  id: r.id,
  userId: r.user_id,
  name: r.name,
  tokenHash: r.token_hash,
  createdAt: r.created_at,
  revokedAt: r.revoked_at,
});
