import { Type, type Static } from 'typebox';
import type { AuditEntry } from '../../shared/protocol/events.ts';

export type { AuditEntry };

/** Accounts, sessions, enrollment and the audit trail, as stored; the interfaces stores implement. */

export const Role = Type.Union([Type.Literal('viewer'), Type.Literal('operator'), Type.Literal('admin')]);
export type Role = Static<typeof Role>;

/** viewer < operator < admin: each role may do what the ones below it may. */
export const ROLE_RANK: Record<Role, number> = { viewer: 1, operator: 2, admin: 3 };

export interface User {
  id: number;
  username: string;
  role: Role;
  /** argon2id, PHC string. */
  passwordHash: string;
  /** TOTP secret (RFC 6238, SHA-1, 6 digits, 30 s) as stored: sealed with the secrets key (see secrets-key.ts), which Accounts holds. */
  totpSecret: string;
  /** The last TOTP time step accepted: a code is good once. */
  totpLastStep: number;
  /** BLAKE2b of the unused recovery codes (each high-entropy, used once). */
  recoveryHashes: string[];
  disabled: boolean;
  createdAt: string;
}

export interface Session {
  /** BLAKE2b of the cookie value: a leaked database holds no usable session. */
  idHash: string;
  userId: number;
  csrfToken: string;
  createdAt: number;
  expiresAt: number;
  lastSeenAt: number;
}

export interface ApiToken {
  id: number;
  userId: number;
  name: string;
  tokenHash: string;
  createdAt: string;
  revokedAt: string | null;
}

export interface AccountStore {
  countActiveAdmins(): Promise<number>;
  createUser(user: Omit<User, 'id' | 'createdAt'>): Promise<User>;
  userById(id: number): Promise<User | undefined>;
  userByName(username: string): Promise<User | undefined>;
  listUsers(): Promise<User[]>;
  updateUser(id: number, patch: Partial<Pick<User, 'role' | 'disabled' | 'totpLastStep' | 'recoveryHashes' | 'passwordHash' | 'totpSecret'>>): Promise<void>;
  /**
   * Spends a TOTP time step: sets totpLastStep to `step` only if it is below it, in one
   * atomic step, so of concurrent logins with one code only one gets true.
   */
  consumeTotpStep(userId: number, step: number): Promise<boolean>;
  /**
   * Spends a recovery code: removes its hash only if the user still has it, in one atomic
   * step. Answers how many codes are left, or undefined when it was not there (spent, or
   * never issued), so of concurrent logins with one code only one gets a number.
   */
  consumeRecoveryHash(userId: number, hash: string): Promise<number | undefined>;
  createSession(session: Session): Promise<void>;
  sessionByHash(idHash: string): Promise<Session | undefined>;
  touchSession(idHash: string, lastSeenAt: number): Promise<void>;
  deleteSession(idHash: string): Promise<void>;
  deleteSessionsOf(userId: number): Promise<void>;
  /** Deletes the sessions that expire before `expiresBefore` or were last seen before `seenBefore`; answers their id hashes. */
  deleteExpiredSessions(expiresBefore: number, seenBefore: number): Promise<string[]>;
  createApiToken(token: Omit<ApiToken, 'id' | 'createdAt' | 'revokedAt'>): Promise<ApiToken>;
  apiTokenByHash(tokenHash: string): Promise<ApiToken | undefined>;
  listApiTokens(userId: number): Promise<ApiToken[]>;
  revokeApiToken(id: number, userId: number): Promise<boolean>;
}

/** Client kinds an enrollment lets a device join as: `client` covers browsers and edge devices. */
export const EnrollmentKind = Type.Union([Type.Literal('client'), Type.Literal('gpu')]);
export type EnrollmentKind = Static<typeof EnrollmentKind>;

export interface EnrollmentToken {
  id: number;
  taskId: number;
  kind: EnrollmentKind;
  label: string;
  tokenHash: string;
  createdBy: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  /** Enrollments made with it. */
  uses: number;
  /** 0: any number. */
  maxUses: number;
}

export interface Enrollment {
  taskId: number;
  /** The client's long-term Ed25519 key, hex. */
  identityKey: string;
  kind: EnrollmentKind;
  /** The token it enrolled with; null for open enrollment. */
  tokenId: number | null;
  createdAt: string;
  revokedAt: string | null;
}

export interface EnrollmentStore {
  createToken(token: Omit<EnrollmentToken, 'id' | 'createdAt' | 'revokedAt' | 'uses'>): Promise<EnrollmentToken>;
  tokenByHash(tokenHash: string): Promise<EnrollmentToken | undefined>;
  tokenById(id: number): Promise<EnrollmentToken | undefined>;
  listTokens(taskId: number): Promise<EnrollmentToken[]>;
  /** Revokes the token and every enrollment made with it; returns the identity keys of those it revoked now. */
  revokeToken(id: number): Promise<string[]>;
  /**
   * Binds an identity key to a task, unless it is bound already (then returns that binding).
   * A revoked binding stays revoked: NOT_ENROLLED, until restoreEnrollment. With a token,
   * counts its use in the same atomic step that checks it is unrevoked, unexpired and not
   * used up (ENROLLMENT_TOKEN_INVALID otherwise), so concurrent enrollments cannot overdraw it.
   */
  enroll(enrollment: Omit<Enrollment, 'createdAt' | 'revokedAt'>): Promise<Enrollment>;
  enrollment(taskId: number, identityKey: string): Promise<Enrollment | undefined>;
  listEnrollments(taskId: number): Promise<Enrollment[]>;
  revokeEnrollment(taskId: number, identityKey: string): Promise<boolean>;
  /** Lifts a revocation, the binding otherwise as it was; false if the key is not bound or not revoked. */
  restoreEnrollment(taskId: number, identityKey: string): Promise<boolean>;
}

export interface AuditLog {
  record(entry: Omit<AuditEntry, 'id' | 'at'>): Promise<void>;
  /** Newest first. */
  list(options: { limit: number; beforeId?: number }): Promise<AuditEntry[]>;
}
