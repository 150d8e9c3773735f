import { randomBytes } from '../../shared/crypto/sodium.ts';
import { TributaryError } from '../../shared/errors.ts';
import { ROLE_RANK, type AccountStore, type AuditLog, type Role, type Session, type User } from './model.ts';
import { LoginThrottle } from './login-throttle.ts';
import { hashPassword, passwordMatches } from './passwords.ts';
import type { SeedBox } from './secrets-key.ts';
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
  /** The API token's id, when via is 'token'. */
  apiTokenId?: number;
}

/** A credential that stopped working: whatever was opened with it (an /admin socket) must close. */
export type CredentialEnd =
  | { kind: 'session'; sessionHash: string }
  | { kind: 'api-token'; tokenId: number }
  /** Every session and token of the user: a role change or disabling. */
  | { kind: 'user'; userId: number };

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
  private readonly throttle = new LoginThrottle();
  private readonly endListeners = new Set<(end: CredentialEnd) => void>();

  /** `seeds` seals TOTP seeds before they are stored and opens them to check a code. */
  constructor(
    private readonly store: AccountStore,
    private readonly audit: AuditLog,
    private readonly seeds: SeedBox,
  ) {}

  /** Called (synchronously) whenever a session or API token stops working. */
  onCredentialEnd(listener: (end: CredentialEnd) => void): () => void {
    this.endListeners.add(listener);
    return () => this.endListeners.delete(listener);
  }

  private ended(end: CredentialEnd): void {
    for (const listener of this.endListeners) listener(end);
  }

  /**
   * Seals seeds an older version stored in clear, and checks the key opens the sealed
   * ones (SECRETS_KEY_INVALID otherwise): a wrong key must stop the start, not lock
   * everyone out or seal new seeds under a second key.
   */
  async sealStoredSeeds(): Promise<void> {
    for (const user of await this.store.listUsers()) {
      if (this.seeds.isSealed(user.totpSecret)) this.seeds.open(user.totpSecret);
      else await this.store.updateUser(user.id, { totpSecret: this.seeds.seal(user.totpSecret) });
    }
  }

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
      totpSecret: this.seeds.seal(totp.secret),
      totpLastStep: 0,
      recoveryHashes: recoveryCodes.map((c) => secretHash(normalizeRecovery(c))),
      disabled: false,
    });
    await this.audit.record({ actor: by.actor, action: 'user.create', target: username, detail: { role }, ip: by.ip });
    return { user, totpSecret: totp.secret, totpUri: totp.uri, recoveryCodes };
  }

  /**
   * Password, then the second factor: a TOTP code (each accepted once) or an unused
   * recovery code (then spent). Every failure is audited and answers LOGIN_FAILED, a
   * missing code too, so the answer never confirms the password alone; past the
   * per-account limit the answer is RATE_LIMITED, whatever was sent.
   */
  async login(username: string, password: string, code: string | undefined, ip: string): Promise<{ sessionId: string; session: Session; user: User }> {
    const fail = async (reason: string, errorCode: 'LOGIN_FAILED' | 'RATE_LIMITED' = 'LOGIN_FAILED'): Promise<never> => {
      await this.audit.record({ actor: username, action: 'login.failed', target: username, detail: { reason }, ip });
      throw new TributaryError(errorCode);
    };
    if (!this.throttle.begin(username)) return fail('too many failures for this account', 'RATE_LIMITED');
    const user = await this.store.userByName(username);
    // The password is checked even without a code: the time taken says nothing either.
    if (!(await passwordMatches(user?.passwordHash, password)) || !user) return fail('password');
    if (user.disabled) return fail('disabled');
    if (!code || !(await this.spendSecondFactor(user, code, ip))) return fail('second factor');
    this.throttle.succeeded(username);
    const sessionId = newSecret('trb_session');
    const now = Date.now();
    const session: Session = { idHash: secretHash(sessionId), userId: user.id, csrfToken: newSecret('trb_csrf', 18), createdAt: now, expiresAt: now + SESSION_TTL_MS, lastSeenAt: now };
    await this.store.createSession(session);
    await this.audit.record({ actor: username, action: 'login', target: username, detail: {}, ip });
    return { sessionId, session, user };
  }

  /** A TOTP code or recovery code, spent in one conditional store update: of racing logins with one code, one wins. */
  private async spendSecondFactor(user: User, code: string, ip: string): Promise<boolean> {
    const step = acceptTotp(this.seeds.open(user.totpSecret), code, user.totpLastStep);
    if (step !== null) return this.store.consumeTotpStep(user.id, step);
    const left = await this.store.consumeRecoveryHash(user.id, secretHash(normalizeRecovery(code)));
    if (left === undefined) return false;
    await this.audit.record({ actor: user.username, action: 'login.recovery-code', target: user.username, detail: { left }, ip });
    return true;
  }

  async logout(sessionId: string, ip: string): Promise<void> {
    const session = await this.store.sessionByHash(secretHash(sessionId));
    if (!session) return;
    await this.store.deleteSession(session.idHash);
    this.ended({ kind: 'session', sessionHash: session.idHash });
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
      this.ended({ kind: 'session', sessionHash: session.idHash });
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
    return user && !user.disabled ? { user, via: 'token', apiTokenId: record.id } : undefined;
  }

  /** Ends the sessions past their lifetime or idle limit (run every minute: a socket outlives no session by more). */
  async endExpiredSessions(now = Date.now()): Promise<void> {
    for (const sessionHash of await this.store.deleteExpiredSessions(now, now - SESSION_IDLE_MS)) this.ended({ kind: 'session', sessionHash });
  }

  async createApiToken(user: User, name: string, ip: string): Promise<{ token: string; id: number }> {
    const token = newSecret('trb_api');
    const record = await this.store.createApiToken({ userId: user.id, name, tokenHash: secretHash(token) });
    await this.audit.record({ actor: user.username, action: 'api-token.create', target: name, detail: { id: record.id }, ip });
    return { token, id: record.id };
  }

  async revokeApiToken(user: User, id: number, ip: string): Promise<void> {
    if (!(await this.store.revokeApiToken(id, user.id))) throw new TributaryError('TOKEN_NOT_FOUND', String(id));
    this.ended({ kind: 'api-token', tokenId: id });
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
    this.ended({ kind: 'user', userId: id });
    if (patch.role && patch.role !== user.role) {
      await this.audit.record({ actor: actor.username, action: 'user.role', target: user.username, detail: { from: user.role, to: patch.role }, ip });
    }
    if (patch.disabled !== undefined && patch.disabled !== user.disabled) {
      await this.audit.record({ actor: actor.username, action: patch.disabled ? 'user.disable' : 'user.enable', target: user.username, detail: {}, ip });
    }
    return (await this.store.userById(id))!;
  }
}
