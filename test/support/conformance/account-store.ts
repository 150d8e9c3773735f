import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AccountStore, ApiToken, Session, User } from '../../../server/auth/model.ts';
import { expectDateString, expectRejection, useFakeDate, type AccountStoreHarness } from './common.ts';

const newUser = (username: string, fields: Partial<Omit<User, 'id' | 'createdAt'>> = {}): Omit<User, 'id' | 'createdAt'> => ({
  username,
  role: 'operator',
  passwordHash: `$argon2id$v=19$m=65536,t=3,p=4$${username}`,
  totpSecret: 'JBSWY3DPEHPK3PXP',
  totpLastStep: 0,
  recoveryHashes: ['aa', 'bb', 'cc'],
  disabled: false,
  ...fields,
});

const session = (idHash: string, userId: number, fields: Partial<Session> = {}): Session => ({
  idHash,
  userId,
  csrfToken: `csrf-${idHash}`,
  createdAt: 1_900_000_000_000,
  expiresAt: 1_900_086_400_000,
  lastSeenAt: 1_900_000_000_000,
  ...fields,
});

/** The AccountStore contract: users, sessions and API tokens. */
export function describeAccountStoreConformance(name: string, open: () => Promise<AccountStoreHarness>): void {
  describe(`${name}: AccountStore conformance`, () => {
    let harness: AccountStoreHarness;
    let accounts: AccountStore;
    beforeEach(async () => {
      harness = await open();
      accounts = harness.accounts;
    });
    afterEach(async () => {
      vi.useRealTimers();
      await harness.close();
    });

    describe('users', () => {
      it('creates a user with an id and a creation time, keeping every field as given', async () => {
        const fields = newUser('ada', { role: 'admin', totpLastStep: 57_000_001, recoveryHashes: ['h1', 'h2'], disabled: true });
        const user = await accounts.createUser(fields);
        expect(user).toMatchObject(fields);
        expect(Number.isInteger(user.id)).toBe(true);
        expectDateString(user.createdAt);
        expect(await accounts.userById(user.id)).toEqual(user);
        expect(await accounts.userByName('ada')).toEqual(user);
      });

      it('answers an unknown id or name with undefined', async () => {
        const user = await accounts.createUser(newUser('ada'));
        expect(await accounts.userById(user.id + 1000)).toBeUndefined();
        expect(await accounts.userByName('grace')).toBeUndefined();
        expect(await accounts.userByName('ADA')).toBeUndefined(); // names are case-sensitive
      });

      it('refuses a second user of the same name, keeping the first', async () => {
        const first = await accounts.createUser(newUser('ada'));
        await expectRejection(accounts.createUser(newUser('ada', { role: 'admin' })));
        expect(await accounts.listUsers()).toEqual([first]);
      });

      it('lists users in creation order', async () => {
        const made = [];
        for (const n of ['zoe', 'ada', 'mia']) made.push(await accounts.createUser(newUser(n)));
        expect(await accounts.listUsers()).toEqual(made);
      });

      it.each([
        ['role', { role: 'viewer' }],
        ['disabled', { disabled: true }],
        ['totpLastStep', { totpLastStep: 60_000_000 }],
        ['recoveryHashes', { recoveryHashes: ['bb'] }],
        ['recoveryHashes (emptied)', { recoveryHashes: [] }],
        ['passwordHash', { passwordHash: '$argon2id$new' }],
        ['totpSecret', { totpSecret: 'sb1:sealed-seed' }],
        ['several fields', { role: 'admin', disabled: true, passwordHash: '$argon2id$both' }],
      ] satisfies Array<[string, Parameters<AccountStore['updateUser']>[1]]>)('updates %s, leaving every other field and user alone', async (_label, patch) => {
        const user = await accounts.createUser(newUser('ada'));
        const other = await accounts.createUser(newUser('grace'));
        await accounts.updateUser(user.id, patch);
        expect(await accounts.userById(user.id)).toEqual({ ...user, ...patch });
        expect(await accounts.userById(other.id)).toEqual(other);
      });

      it('re-enables a disabled user', async () => {
        const user = await accounts.createUser(newUser('ada', { disabled: true }));
        await accounts.updateUser(user.id, { disabled: false });
        expect((await accounts.userById(user.id))?.disabled).toBe(false);
      });

      it('changes nothing on an empty patch', async () => {
        const user = await accounts.createUser(newUser('ada'));
        await accounts.updateUser(user.id, {});
        expect(await accounts.userById(user.id)).toEqual(user);
      });

      it('counts the active admins: admins that are not disabled', async () => {
        expect(await accounts.countActiveAdmins()).toBe(0);
        await accounts.createUser(newUser('root', { role: 'admin' }));
        await accounts.createUser(newUser('off', { role: 'admin', disabled: true }));
        const op = await accounts.createUser(newUser('op', { role: 'operator' }));
        await accounts.createUser(newUser('view', { role: 'viewer' }));
        expect(await accounts.countActiveAdmins()).toBe(1);
        await accounts.updateUser(op.id, { role: 'admin' });
        expect(await accounts.countActiveAdmins()).toBe(2);
        await accounts.updateUser(op.id, { disabled: true });
        expect(await accounts.countActiveAdmins()).toBe(1);
      });
    });

    describe('one-time codes', () => {
      it('spends a TOTP step only forwards, once, and for that user only', async () => {
        const user = await accounts.createUser(newUser('ada', { totpLastStep: 100 }));
        const other = await accounts.createUser(newUser('grace', { totpLastStep: 100 }));
        expect(await accounts.consumeTotpStep(user.id, 100)).toBe(false);
        expect(await accounts.consumeTotpStep(user.id, 99)).toBe(false);
        expect(await accounts.consumeTotpStep(user.id, 101)).toBe(true);
        expect(await accounts.consumeTotpStep(user.id, 101)).toBe(false);
        expect((await accounts.userById(user.id))?.totpLastStep).toBe(101);
        expect(await accounts.userById(other.id)).toEqual(other);
        expect(await accounts.consumeTotpStep(user.id + other.id + 1000, 500)).toBe(false);
      });

      it('gives a TOTP step to one of several concurrent spenders', async () => {
        const user = await accounts.createUser(newUser('ada', { totpLastStep: 100 }));
        const won = await Promise.all([105, 105, 105].map((step) => accounts.consumeTotpStep(user.id, step)));
        expect(won.filter(Boolean)).toHaveLength(1);
        expect((await accounts.userById(user.id))?.totpLastStep).toBe(105);
      });

      it('spends a recovery hash once, answering how many are left, and leaves the rest in order', async () => {
        const user = await accounts.createUser(newUser('ada', { recoveryHashes: ['aa', 'bb', 'cc'] }));
        const other = await accounts.createUser(newUser('grace', { recoveryHashes: ['bb'] }));
        expect(await accounts.consumeRecoveryHash(user.id, 'bb')).toBe(2);
        expect((await accounts.userById(user.id))?.recoveryHashes).toEqual(['aa', 'cc']);
        expect(await accounts.consumeRecoveryHash(user.id, 'bb')).toBeUndefined();
        expect(await accounts.consumeRecoveryHash(user.id, 'zz')).toBeUndefined();
        expect(await accounts.userById(other.id)).toEqual(other);
        expect(await accounts.consumeRecoveryHash(user.id, 'aa')).toBe(1);
        expect(await accounts.consumeRecoveryHash(user.id, 'cc')).toBe(0);
        expect((await accounts.userById(user.id))?.recoveryHashes).toEqual([]);
        expect(await accounts.consumeRecoveryHash(user.id, 'cc')).toBeUndefined();
      });

      it('gives a recovery hash to one of several concurrent spenders', async () => {
        const user = await accounts.createUser(newUser('ada', { recoveryHashes: ['aa', 'bb', 'cc'] }));
        const left = await Promise.all(['aa', 'aa', 'cc', 'aa'].map((hash) => accounts.consumeRecoveryHash(user.id, hash)));
        expect(left.filter((n) => n !== undefined)).toHaveLength(2);
        expect((await accounts.userById(user.id))?.recoveryHashes).toEqual(['bb']);
      });
    });

    describe('sessions', () => {
      it('stores a session and finds it by the hash of its id', async () => {
        const user = await accounts.createUser(newUser('ada'));
        const s = session('hash-1', user.id);
        await accounts.createSession(s);
        expect(await accounts.sessionByHash('hash-1')).toEqual(s);
        expect(await accounts.sessionByHash('hash-2')).toBeUndefined();
      });

      it('moves only lastSeenAt when a session is touched', async () => {
        const user = await accounts.createUser(newUser('ada'));
        const s = session('hash-1', user.id);
        await accounts.createSession(s);
        await accounts.createSession(session('hash-2', user.id));
        await accounts.touchSession('hash-1', s.lastSeenAt + 61_000);
        expect(await accounts.sessionByHash('hash-1')).toEqual({ ...s, lastSeenAt: s.lastSeenAt + 61_000 });
        expect(await accounts.sessionByHash('hash-2')).toEqual(session('hash-2', user.id));
      });

      it('deletes one session', async () => {
        const user = await accounts.createUser(newUser('ada'));
        await accounts.createSession(session('hash-1', user.id));
        await accounts.createSession(session('hash-2', user.id));
        await accounts.deleteSession('hash-1');
        expect(await accounts.sessionByHash('hash-1')).toBeUndefined();
        expect(await accounts.sessionByHash('hash-2')).toBeDefined();
      });

      it('deletes every session of one user, and no other user’s', async () => {
        const ada = await accounts.createUser(newUser('ada'));
        const grace = await accounts.createUser(newUser('grace'));
        await accounts.createSession(session('ada-1', ada.id));
        await accounts.createSession(session('ada-2', ada.id));
        await accounts.createSession(session('grace-1', grace.id));
        await accounts.deleteSessionsOf(ada.id);
        expect(await accounts.sessionByHash('ada-1')).toBeUndefined();
        expect(await accounts.sessionByHash('ada-2')).toBeUndefined();
        expect(await accounts.sessionByHash('grace-1')).toEqual(session('grace-1', grace.id));
      });

      it('deletes the sessions past their end or idle since before a time, answering their hashes', async () => {
        const user = await accounts.createUser(newUser('ada'));
        await accounts.createSession(session('ended', user.id, { expiresAt: 1_000, lastSeenAt: 900 }));
        await accounts.createSession(session('idle', user.id, { expiresAt: 5_000, lastSeenAt: 100 }));
        await accounts.createSession(session('live', user.id, { expiresAt: 2_000, lastSeenAt: 200 })); // both limits exactly
        expect((await accounts.deleteExpiredSessions(2_000, 200)).sort()).toEqual(['ended', 'idle']);
        expect(await accounts.sessionByHash('ended')).toBeUndefined();
        expect(await accounts.sessionByHash('idle')).toBeUndefined();
        expect(await accounts.sessionByHash('live')).toBeDefined();
        expect(await accounts.deleteExpiredSessions(2_000, 200)).toEqual([]);
      });
    });

    describe('API tokens', () => {
      it('creates a token unrevoked, finds it by its hash, and lists each user’s tokens in creation order', async () => {
        const ada = await accounts.createUser(newUser('ada'));
        const grace = await accounts.createUser(newUser('grace'));
        const first = await accounts.createApiToken({ userId: ada.id, name: 'ci', tokenHash: 't-1' });
        const theirs = await accounts.createApiToken({ userId: grace.id, name: 'laptop', tokenHash: 't-2' });
        const second = await accounts.createApiToken({ userId: ada.id, name: 'cron', tokenHash: 't-3' });
        expect(first).toMatchObject({ userId: ada.id, name: 'ci', tokenHash: 't-1', revokedAt: null });
        expect(Number.isInteger(first.id)).toBe(true);
        expectDateString(first.createdAt);
        expect(await accounts.apiTokenByHash('t-1')).toEqual(first);
        expect(await accounts.apiTokenByHash('t-9')).toBeUndefined();
        expect(await accounts.listApiTokens(ada.id)).toEqual([first, second]);
        expect(await accounts.listApiTokens(grace.id)).toEqual([theirs]);
        expect(await accounts.listApiTokens(grace.id + ada.id + 1000)).toEqual([]);
      });

      it('refuses a second token with the same hash', async () => {
        const ada = await accounts.createUser(newUser('ada'));
        await accounts.createApiToken({ userId: ada.id, name: 'one', tokenHash: 'same' });
        await expectRejection(accounts.createApiToken({ userId: ada.id, name: 'two', tokenHash: 'same' }));
        expect((await accounts.listApiTokens(ada.id)).map((t) => t.name)).toEqual(['one']);
      });

      it('revokes a token for its owner only, once', async () => {
        const ada = await accounts.createUser(newUser('ada'));
        const grace = await accounts.createUser(newUser('grace'));
        const token = await accounts.createApiToken({ userId: ada.id, name: 'ci', tokenHash: 't-1' });
        expect(await accounts.revokeApiToken(token.id, grace.id)).toBe(false);
        expect((await accounts.apiTokenByHash('t-1'))?.revokedAt).toBeNull();
        expect(await accounts.revokeApiToken(token.id, ada.id)).toBe(true);
        const revoked = (await accounts.apiTokenByHash('t-1')) as ApiToken;
        expectDateString(revoked.revokedAt);
        expect(await accounts.revokeApiToken(token.id, ada.id)).toBe(false);
        expect(await accounts.revokeApiToken(token.id + 1000, ada.id)).toBe(false);
      });

      it('keeps the first revocation time when a token is revoked again', async () => {
        const ada = await accounts.createUser(newUser('ada'));
        const token = await accounts.createApiToken({ userId: ada.id, name: 'ci', tokenHash: 't-1' });
        useFakeDate(Date.UTC(2031, 0, 1));
        await accounts.revokeApiToken(token.id, ada.id);
        const first = (await accounts.apiTokenByHash('t-1'))?.revokedAt;
        vi.setSystemTime(Date.UTC(2031, 5, 1));
        await accounts.revokeApiToken(token.id, ada.id);
        expect((await accounts.apiTokenByHash('t-1'))?.revokedAt).toBe(first);
      });
    });
  });
}
