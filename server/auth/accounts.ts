import { randomBytes } from '../../shared/crypto/sodium.ts';
import { TributaryError } from '../../shared/errors.ts';
import { ROLE_RANK, type AccountStore, type AuditLog, type Role, type Session, type User } from './model.ts';
import { hashPassword, passwordMatches } from './passwords.ts';
import { newSecret, secretHash } from './secrets.ts';
import { acceptTotp, newTotp } from './totp.ts';

/** Sessions end 12 h after login, or after an hour without a request. */
const SESSION_TTL_MS = 12 * 3600_000;
const SESSION_IDLE_MS = 3600_000;
const RECOVERY_CODES = 10;

/** Who a request or socket acts as. */
export interface Principal {
  user: User;
  /** A session needs a CSRF token on state-changing requests; an API token is never ambient. */
  via: 'session' | 'token';
  session?: Session;
}

/** What a new account's owner is shown once: the TOTP secret (and its QR URI) and recovery codes. */
export interface NewAccount {
  user: User;
  totpSecret: string;
  totpUri: string;
  recoveryCodes: string[];
}

function recoveryCode(): string {
  return Buffer.from(randomBytes(8)).toString('hex').replace(/(.{4})(?=.)/g, '$1-');
}

const normalizeRecovery = (code: string) => code.trim().toLowerCase();

/**
 * Accounts and sessions: first-run setup, users with roles, password + TOTP login with
 * recovery codes, sessions with CSRF tokens, API tokens for automation. Every change is
 * written to the audit log.
 */
export class Accounts {
  private setupToken: string | undefined;

  constructor(
    private readonly store: AccountStore,
    private readonly audit: AuditLog,
  ) {}

  /** While there is no active admin: a one-time token for the first one (printed at start, never stored). */
  async setupTokenIfNeeded(): Promise<string | undefined> {
    if ((await this.store.countActiveAdmins()) > 0) return undefined;
    this.setupToken ??= newSecret('trb_setup', 24);
    return this.setupToken;
  }

  async setup(token: string, username: string, password: string, ip: string): Promise<NewAccount> {
    const expected = this.setupToken;
    if (!expected || secretHash(token) !== secretHash(expected) || (await this.store.countActiveAdmins()) > 0) {
      await this.audit.record({ actor: 'anonymous', action: 'setup.refused', target: username, detail: {}, ip });
      throw new TributaryError('SETUP_TOKEN_INVALID');
    }
    this.setupToken = undefined;
    return this.createUser(username, password, 'admin', { actor: 'setup', ip });
  }

  async createUser(username: string, password: string, role: Role, by: { actor: string; ip: string }): Promise<NewAccount> {
    if (await this.store.userByName(username)) throw new TributaryError('USER_EXISTS', username);
    const totp = newTotp(username);
    const recoveryCodes = Array.from({ length: RECOVERY_CODES }, recoveryCode);
    const user = await this.store.createUser({
      username,
      role,
      passwordHash: await hashPassword(password),
      totpSecret: totp.secret,
      totpLastStep: 0,
      recoveryHashes: recoveryCodes.map((c) => secretHash(normalizeRecovery(c))),
      disabled: false,
    });
    await this.audit.record({ actor: by.actor, action: 'user.create', target: username, detail: { role }, ip: by.ip });
    return { user, totpSecret: totp.secret, totpUri: totp.uri, recoveryCodes };
  }

  /**
   * Password, then the second factor: a TOTP code (each accepted once) or an unused
   * recovery code (then spent). Every failure is audited and answers alike.
   */
  async login(username: string, password: string, code: string | undefined, ip: string): Promise<{ sessionId: string; session: Session; user: User }> {
    const user = await this.store.userByName(username);
    const fail = async (reason: string, errorCode: 'LOGIN_FAILED' | 'TOTP_REQUIRED' = 'LOGIN_FAILED'): Promise<never> => {
      await this.audit.record({ actor: username, action: 'login.failed', target: username, detail: { reason }, ip });
      throw new TributaryError(errorCode);
    };
    if (!(await passwordMatches(user?.passwordHash, password)) || !user) return fail('password');
    if (user.disabled) return fail('disabled');
    if (!code) return fail('no second factor', 'TOTP_REQUIRED');
    const step = acceptTotp(user.totpSecret, code, user.totpLastStep);
    if (step !== null) {
      await this.store.updateUser(user.id, { totpLastStep: step });
    } else {
      const hashed = secretHash(normalizeRecovery(code));
      if (!user.recoveryHashes.includes(hashed)) return fail('second factor');
      await this.store.updateUser(user.id, { recoveryHashes: user.recoveryHashes.filter((h) => h !== hashed) });
      await this.audit.record({ actor: username, action: 'login.recovery-code', target: username, detail: { left: user.recoveryHashes.length - 1 }, ip });
    }
    const sessionId = newSecret('trb_session');
    const now = Date.now();
    const session: Session = { idHash: secretHash(sessionId), userId: user.id, csrfToken: newSecret('trb_csrf', 18), createdAt: now, expiresAt: now + SESSION_TTL_MS, lastSeenAt: now };
    await this.store.createSession(session);
    await this.audit.record({ actor: username, action: 'login', target: username, detail: {}, ip });
    return { sessionId, session, user };
  }

  async logout(sessionId: string, ip: string): Promise<void> {
    const session = await this.store.sessionByHash(secretHash(sessionId));
    if (!session) return;
    await this.store.deleteSession(session.idHash);
    const user = await this.store.userById(session.userId);
    await this.audit.record({ actor: user?.username ?? 'unknown', action: 'logout', target: user?.username ?? '', detail: {}, ip });
  }

  /** The principal behind a session cookie, if the session is live (and then it is kept alive). */
  async fromSession(sessionId: string): Promise<Principal | undefined> {
    const session = await this.store.sessionByHash(secretHash(sessionId));
    if (!session) return undefined;
    const now = Date.now();
    if (now > session.expiresAt || now - session.lastSeenAt > SESSION_IDLE_MS) {
      await this.store.deleteSession(session.idHash);
      return undefined;
    }
    const user = await this.store.userById(session.userId);
    if (!user || user.disabled) return undefined;
    if (now - session.lastSeenAt > 60_000) await this.store.touchSession(session.idHash, now);
    return { user, via: 'session', session };
  }

  async fromApiToken(token: string): Promise<Principal | undefined> {
    const record = await this.store.apiTokenByHash(secretHash(token));
    if (!record || record.revokedAt) return undefined;
    const user = await this.store.userById(record.userId);
    return user && !user.disabled ? { user, via: 'token' } : undefined;
  }

  async createApiToken(user: User, name: string, ip: string): Promise<{ token: string; id: number }> {
    const token = newSecret('trb_api');
    const record = await this.store.createApiToken({ userId: user.id, name, tokenHash: secretHash(token) });
    await this.audit.record({ actor: user.username, action: 'api-token.create', target: name, detail: { id: record.id }, ip });
    return { token, id: record.id };
  }

  async revokeApiToken(user: User, id: number, ip: string): Promise<void> {
    if (!(await this.store.revokeApiToken(id, user.id))) throw new TributaryError('TOKEN_NOT_FOUND', String(id));
    await this.audit.record({ actor: user.username, action: 'api-token.revoke', target: String(id), detail: {}, ip });
  }

  listApiTokens(user: User) {
    return this.store.listApiTokens(user.id);
  }

  listUsers(): Promise<User[]> {
    return this.store.listUsers();
  }

  userByName(username: string): Promise<User | undefined> {
    return this.store.userByName(username);
  }

  /** Role changes and disabling, never leaving the server without an active admin. Sessions of a changed user end. */
  async updateUser(actor: User, id: number, patch: { role?: Role; disabled?: boolean }, ip: string): Promise<User> {
    const user = await this.store.userById(id);
    if (!user) throw new TributaryError('USER_NOT_FOUND', String(id));
    const losesAdmin = user.role === 'admin' && !user.disabled && ((patch.role && ROLE_RANK[patch.role] < ROLE_RANK.admin) || patch.disabled === true);
    if (losesAdmin && (await this.store.countActiveAdmins()) <= 1) throw new TributaryError('LAST_ADMIN');
    await this.store.updateUser(id, patch);
    await this.store.deleteSessionsOf(id);
    if (patch.role && patch.role !== user.role) {
      await this.audit.record({ actor: actor.username, action: 'user.role', target: user.username, detail: { from: user.role, to: patch.role }, ip });
    }
    if (patch.disabled !== undefined && patch.disabled !== user.disabled) {
      await this.audit.record({ actor: actor.username, action: patch.disabled ? 'user.disable' : 'user.enable', target: user.username, detail: {}, ip });
    }
    return (await this.store.userById(id))!;
  }
}
