import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AccountStore, ApiToken, AuditLog, EnrollmentStore, EnrollmentToken, Session, User } from '../../server/auth/model.ts';
import { requireTask, type Store } from '../../server/store/store.ts';
import { TributaryError, type ErrorCode } from '../../shared/errors.ts';
import { TASK_DEFAULTS, withTaskDefaults, type ParticipantRecord, type RoundRecord, type TaskSpec, type TaskStatus } from '../../shared/protocol/task.ts';

/**
 * One conformance suite per storage interface, run against every implementation (SQLite
 * today, PostgreSQL later): what the server relies on, written once. Each test gets a
 * fresh, empty backend from `open` and hands it back with `close`.
 *
 * Timestamps the backend sets (createdAt, revokedAt, at) are only required to be dates
 * in a string: a backend may take them from its own clock. Where a test must tell two
 * moments apart it moves the process's Date on (fake timers, Date only), which changes
 * nothing for a backend that uses its own clock.
 */

export interface StoreHarness {
  store: Store;
  /** A second store over the same data, as a restarted server opens it (the first one closed). */
  reopen(): Promise<Store>;
  /** Closes whatever the harness opened and deletes the data. */
  close(): Promise<void>;
}

export interface AccountStoreHarness {
  accounts: AccountStore;
  close(): Promise<void>;
}

export interface EnrollmentStoreHarness {
  enrollments: EnrollmentStore;
  /** The tasks enrollments belong to, in the same database. */
  tasks: Store;
  close(): Promise<void>;
}

export interface AuditLogHarness {
  audit: AuditLog;
  close(): Promise<void>;
}

async function expectRejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.fail('expected the call to be refused'),
    (error: unknown) => error,
  );
}

async function expectRejectsWithCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const error = await expectRejection(promise);
  expect(error).toBeInstanceOf(TributaryError);
  expect((error as TributaryError).code).toBe(code);
}

function expectDateString(value: unknown): void {
  expect(typeof value).toBe('string');
  expect(Number.isNaN(Date.parse(value as string))).toBe(false);
}

/** Moves the process's Date on (only Date: backends keep their real timers). */
function useFakeDate(at: number): void {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(at);
}

/** A spec that sets every field away from its default, floats and nested objects included. */
const UNUSUAL_SPEC: TaskSpec = {
  name: 'unusual — ünïcode ✓',
  model: 'fmnist-cnn',
  dataset: 'fashion-mnist',
  partition: { kind: 'sizes', sizes: [3, 1.5, 0.25] },
  shards: 3,
  rounds: 7,
  clientsPerRound: 3,
  minUpdates: 2,
  bits: 4,
  clipSigma: 2.75,
  strategy: 'fedyogi',
  mode: 'sync',
  bufferSize: 5,
  maxStaleness: 3,
  scheduling: 'uniform',
  priority: 9,
  secure: true,
  threshold: 2,
  neighbours: 4,
  hyper: { localEpochs: 3, batchSize: 16, learningRate: 0.0125, optimizer: 'adam', proximalMu: 0.01 },
  openEnrollment: true,
  roundDeadlineMs: 45_000,
  trainLimit: 600,
  testLimit: 100,
  seed: 0xffff_fffe,
};

function roundRecord(taskId: number, round: number, fields: Partial<RoundRecord> = {}): RoundRecord {
  return {
    taskId,
    round,
    participants: 4,
    dropped: 1,
    late: 2,
    rejected: 1,
    samples: 1_234,
    staleness: 0.75,
    accuracy: 0.8125 + round / 1024,
    loss: 0.4321,
    uploadBytes: 98_765,
    uploadBytesPerParam: 1.0625,
    durationMs: 12_345,
    finishedAt: `2030-01-0${round}T00:00:00.000Z`,
    ...fields,
  };
}

function participant(clientId: string, fields: Partial<ParticipantRecord> = {}): ParticipantRecord {
  return { clientId, kind: 'browser', backend: 'webgl', speed: 1_234.5, budget: 640, samples: 600, elapsedMs: 4_200, outcome: 'delivered', ...fields };
}

/** The Store contract: tasks, their status, and their rounds with participants. */
export function describeStoreConformance(name: string, open: () => Promise<StoreHarness>): void {
  describe(`${name}: Store conformance`, () => {
    let harness: StoreHarness;
    let store: Store;
    beforeEach(async () => {
      harness = await open();
      store = harness.store;
    });
    afterEach(async () => {
      vi.useRealTimers();
      await harness.close();
    });

    const named = (name: string) => withTaskDefaults({ name });

    describe('tasks', () => {
      it('creates a task as `created` with no completed rounds, keeping its spec exactly', async () => {
        const created = await store.createTask(UNUSUAL_SPEC);
        expect(created).toMatchObject({ spec: UNUSUAL_SPEC, status: 'created', completedRounds: 0 });
        expect(Number.isInteger(created.id)).toBe(true);
        expectDateString(created.createdAt);
        expect(await store.getTask(created.id)).toEqual(created);
        expect(await store.listTasks()).toEqual([created]);
      });

      it('keeps a spec made from a name alone as withTaskDefaults filled it', async () => {
        const created = await store.createTask(named('plain'));
        expect((await store.getTask(created.id))?.spec).toEqual({ ...TASK_DEFAULTS, name: 'plain' });
      });

      it('gives each task its own id and lists tasks in creation order', async () => {
        const ids: number[] = [];
        for (const n of ['first', 'second', 'third']) ids.push((await store.createTask(named(n))).id);
        expect(new Set(ids).size).toBe(3);
        expect((await store.listTasks()).map((t) => [t.id, t.spec.name])).toEqual([[ids[0], 'first'], [ids[1], 'second'], [ids[2], 'third']]);
      });

      it('lists no tasks when it holds none', async () => {
        expect(await store.listTasks()).toEqual([]);
      });

      it('answers getTask of an unknown id with undefined, and requireTask with TASK_NOT_FOUND', async () => {
        const known = await store.createTask(named('known'));
        expect(await store.getTask(known.id + 1000)).toBeUndefined();
        await expectRejectsWithCode(requireTask(store, known.id + 1000), 'TASK_NOT_FOUND');
        expect(await requireTask(store, known.id)).toEqual(known);
      });

      it('changes a task’s status to each status in turn, leaving other tasks alone', async () => {
        const task = await store.createTask(named('moving'));
        const bystander = await store.createTask(named('bystander'));
        for (const status of ['running', 'paused', 'running', 'completed', 'stopped', 'created'] satisfies TaskStatus[]) {
          await store.setTaskStatus(task.id, status);
          expect((await store.getTask(task.id))?.status).toBe(status);
        }
        expect(await store.getTask(bystander.id)).toEqual(bystander);
      });

      it('changes nothing on a status change of an unknown task', async () => {
        const task = await store.createTask(named('only'));
        await store.setTaskStatus(task.id + 1000, 'running');
        expect(await store.listTasks()).toEqual([task]);
      });
    });

    describe('rounds', () => {
      it('records a completed round exactly and advances the task to it in the same call', async () => {
        const task = await store.createTask(named('learning'));
        const record = roundRecord(task.id, 1);
        await store.completeRound(record);
        expect(await store.listRounds(task.id)).toEqual([record]);
        expect(await store.getTask(task.id)).toEqual({ ...task, completedRounds: 1 });
        await store.completeRound(roundRecord(task.id, 2));
        expect((await store.getTask(task.id))?.completedRounds).toBe(2);
      });

      it('keeps the task’s status when it records a round', async () => {
        const task = await store.createTask(named('running'));
        await store.setTaskStatus(task.id, 'running');
        await store.completeRound(roundRecord(task.id, 1));
        expect((await store.getTask(task.id))?.status).toBe('running');
      });

      it('records a round’s participants exactly, listed by client id, null budget and elapsed time kept null', async () => {
        const task = await store.createTask(named('crowd'));
        const people = [
          participant('c-2', { outcome: 'late', samples: 0, elapsedMs: null }),
          participant('a-1', { budget: null, kind: 'gpu', backend: 'webgpu' }),
          participant('b-3', { outcome: 'dropped', samples: 0, elapsedMs: null, speed: 0 }),
          participant('d-4', { outcome: 'rejected', samples: 0, elapsedMs: 17 }),
        ];
        await store.completeRound(roundRecord(task.id, 1), people);
        expect(await store.listParticipants(task.id, 1)).toEqual([people[1], people[2], people[0], people[3]]);
      });

      it('records a round with no participants when none are given', async () => {
        const task = await store.createTask(named('quiet'));
        await store.completeRound(roundRecord(task.id, 1));
        await store.completeRound(roundRecord(task.id, 2), []);
        expect(await store.listParticipants(task.id, 1)).toEqual([]);
        expect(await store.listParticipants(task.id, 2)).toEqual([]);
        expect(await store.listRounds(task.id)).toHaveLength(2);
      });

      it('lists rounds in round order, each task only its own, and participants per round', async () => {
        const a = await store.createTask(named('a'));
        const b = await store.createTask(named('b'));
        for (const round of [1, 2, 3]) {
          await store.completeRound(roundRecord(a.id, round), [participant(`a${round}`)]);
          if (round < 3) await store.completeRound(roundRecord(b.id, round, { samples: round }), [participant(`b${round}`)]);
        }
        expect((await store.listRounds(a.id)).map((r) => [r.taskId, r.round])).toEqual([[a.id, 1], [a.id, 2], [a.id, 3]]);
        expect(await store.listRounds(b.id)).toEqual([roundRecord(b.id, 1, { samples: 1 }), roundRecord(b.id, 2, { samples: 2 })]);
        expect((await store.listParticipants(a.id, 2)).map((p) => p.clientId)).toEqual(['a2']);
        expect((await store.listParticipants(b.id, 2)).map((p) => p.clientId)).toEqual(['b2']);
        expect((await store.getTask(a.id))?.completedRounds).toBe(3);
        expect((await store.getTask(b.id))?.completedRounds).toBe(2);
      });

      it('lists no rounds or participants for an unknown task or round', async () => {
        const task = await store.createTask(named('one round'));
        await store.completeRound(roundRecord(task.id, 1), [participant('x')]);
        expect(await store.listRounds(task.id + 1000)).toEqual([]);
        expect(await store.listParticipants(task.id + 1000, 1)).toEqual([]);
        expect(await store.listParticipants(task.id, 2)).toEqual([]);
      });

      it('refuses to record a round twice, keeping the first record, its participants and the task’s progress', async () => {
        const task = await store.createTask(named('twice'));
        await store.completeRound(roundRecord(task.id, 1), [participant('first')]);
        await store.completeRound(roundRecord(task.id, 2));
        await expectRejection(store.completeRound(roundRecord(task.id, 1, { samples: 1 }), [participant('second')]));
        expect(await store.listRounds(task.id)).toEqual([roundRecord(task.id, 1), roundRecord(task.id, 2)]);
        expect((await store.listParticipants(task.id, 1)).map((p) => p.clientId)).toEqual(['first']);
        expect((await store.getTask(task.id))?.completedRounds).toBe(2);
      });

      it('refuses a round of an unknown task, leaving none of its participants behind', async () => {
        const task = await store.createTask(named('real'));
        const ghost = task.id + 1000;
        await expectRejection(store.completeRound(roundRecord(ghost, 1), [participant('p')]));
        expect(await store.listRounds(ghost)).toEqual([]);
        expect(await store.listParticipants(ghost, 1)).toEqual([]);
        expect(await store.listTasks()).toEqual([task]);
      });
    });

    it('keeps tasks, statuses, rounds and participants across a reopen', async () => {
      const task = await store.createTask(UNUSUAL_SPEC);
      await store.setTaskStatus(task.id, 'running');
      await store.completeRound(roundRecord(task.id, 1), [participant('p1'), participant('p2', { budget: null })]);
      const reopened = await harness.reopen();
      expect(await reopened.getTask(task.id)).toEqual({ ...task, status: 'running', completedRounds: 1 });
      expect(await reopened.listRounds(task.id)).toEqual([roundRecord(task.id, 1)]);
      expect(await reopened.listParticipants(task.id, 1)).toEqual([participant('p1'), participant('p2', { budget: null })]);
    });

    it('closes, and closing again is harmless', async () => {
      await store.close();
      await expect(store.close()).resolves.toBeUndefined();
    });
  });
}

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

const newToken = (taskId: number, tokenHash: string, fields: Partial<Omit<EnrollmentToken, 'id' | 'createdAt' | 'revokedAt' | 'uses'>> = {}) => ({
  taskId,
  kind: 'client' as const,
  label: `label ${tokenHash}`,
  tokenHash,
  createdBy: 'ada',
  expiresAt: null,
  maxUses: 0,
  ...fields,
});

/** The EnrollmentStore contract: enrollment tokens and the identity keys bound with them. */
export function describeEnrollmentStoreConformance(name: string, open: () => Promise<EnrollmentStoreHarness>): void {
  describe(`${name}: EnrollmentStore conformance`, () => {
    let harness: EnrollmentStoreHarness;
    let enrollments: EnrollmentStore;
    let taskA: number;
    let taskB: number;
    beforeEach(async () => {
      harness = await open();
      enrollments = harness.enrollments;
      taskA = (await harness.tasks.createTask(withTaskDefaults({ name: 'a' }))).id;
      taskB = (await harness.tasks.createTask(withTaskDefaults({ name: 'b' }))).id;
    });
    afterEach(async () => {
      vi.useRealTimers();
      await harness.close();
    });

    const uses = async (id: number) => (await enrollments.tokenById(id))!.uses;

    describe('tokens', () => {
      it('creates a token unused and unrevoked, keeping every field as given', async () => {
        const fields = newToken(taskA, 'h-1', { kind: 'gpu', label: 'lab GPUs', expiresAt: '2031-01-01T00:00:00.000Z', maxUses: 3 });
        const token = await enrollments.createToken(fields);
        expect(token).toMatchObject({ ...fields, uses: 0, revokedAt: null });
        expect(Number.isInteger(token.id)).toBe(true);
        expectDateString(token.createdAt);
        expect(await enrollments.tokenById(token.id)).toEqual(token);
        expect(await enrollments.tokenByHash('h-1')).toEqual(token);
      });

      it('answers an unknown token id or hash with undefined', async () => {
        const token = await enrollments.createToken(newToken(taskA, 'h-1'));
        expect(await enrollments.tokenById(token.id + 1000)).toBeUndefined();
        expect(await enrollments.tokenByHash('h-2')).toBeUndefined();
      });

      it('lists a task’s tokens in creation order, and no other task’s', async () => {
        const one = await enrollments.createToken(newToken(taskA, 'h-1'));
        const other = await enrollments.createToken(newToken(taskB, 'h-2'));
        const two = await enrollments.createToken(newToken(taskA, 'h-3'));
        expect(await enrollments.listTokens(taskA)).toEqual([one, two]);
        expect(await enrollments.listTokens(taskB)).toEqual([other]);
        expect(await enrollments.listTokens(taskA + taskB + 1000)).toEqual([]);
      });
    });

    describe('enrollments', () => {
      it('binds a key to a task with a token, counting one use of it', async () => {
        const token = await enrollments.createToken(newToken(taskA, 'h-1', { kind: 'gpu' }));
        const made = await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'gpu', tokenId: token.id });
        expect(made).toMatchObject({ taskId: taskA, identityKey: 'k1', kind: 'gpu', tokenId: token.id, revokedAt: null });
        expectDateString(made.createdAt);
        expect(await enrollments.enrollment(taskA, 'k1')).toEqual(made);
        expect(await uses(token.id)).toBe(1);
        await enrollments.enroll({ taskId: taskA, identityKey: 'k2', kind: 'gpu', tokenId: token.id });
        expect(await uses(token.id)).toBe(2);
      });

      it('refuses, counting nothing, an enrollment on a token that is used up, revoked or expired', async () => {
        const single = await enrollments.createToken(newToken(taskA, 'h-1', { maxUses: 1 }));
        await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: single.id });
        await expect(enrollments.enroll({ taskId: taskA, identityKey: 'k2', kind: 'client', tokenId: single.id })).rejects.toMatchObject({ code: 'ENROLLMENT_TOKEN_INVALID' });
        expect(await uses(single.id)).toBe(1);
        const revoked = await enrollments.createToken(newToken(taskA, 'h-2'));
        await enrollments.revokeToken(revoked.id);
        await expect(enrollments.enroll({ taskId: taskA, identityKey: 'k3', kind: 'client', tokenId: revoked.id })).rejects.toMatchObject({ code: 'ENROLLMENT_TOKEN_INVALID' });
        const expired = await enrollments.createToken(newToken(taskA, 'h-3', { expiresAt: '2001-01-01T00:00:00.000Z' }));
        await expect(enrollments.enroll({ taskId: taskA, identityKey: 'k4', kind: 'client', tokenId: expired.id })).rejects.toMatchObject({ code: 'ENROLLMENT_TOKEN_INVALID' });
        expect(await enrollments.enrollment(taskA, 'k2')).toBeUndefined();
        expect(await enrollments.enrollment(taskA, 'k3')).toBeUndefined();
        expect(await enrollments.enrollment(taskA, 'k4')).toBeUndefined();
      });

      it('binds a key with no token (open enrollment), counting no token’s use', async () => {
        const token = await enrollments.createToken(newToken(taskA, 'h-1'));
        const made = await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: null });
        expect(made).toMatchObject({ tokenId: null, revokedAt: null });
        expect(await uses(token.id)).toBe(0);
      });

      it('returns the existing binding for a key bound already, counting no second use', async () => {
        const first = await enrollments.createToken(newToken(taskA, 'h-1'));
        const second = await enrollments.createToken(newToken(taskA, 'h-2'));
        const made = await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: first.id });
        expect(await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: second.id })).toEqual(made);
        expect(await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: first.id })).toEqual(made);
        expect(await uses(first.id)).toBe(1);
        expect(await uses(second.id)).toBe(0);
        expect(await enrollments.listEnrollments(taskA)).toEqual([made]);
      });

      it('keeps one key’s bindings to different tasks apart', async () => {
        const inA = await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: null });
        expect(await enrollments.enrollment(taskB, 'k1')).toBeUndefined();
        const inB = await enrollments.enroll({ taskId: taskB, identityKey: 'k1', kind: 'gpu', tokenId: null });
        expect(inB).toMatchObject({ taskId: taskB, kind: 'gpu' });
        expect(await enrollments.enrollment(taskA, 'k1')).toEqual(inA);
        expect(await enrollments.revokeEnrollment(taskA, 'k1')).toBe(true);
        expect(await enrollments.enrollment(taskB, 'k1')).toEqual(inB);
      });

      it('answers an unknown binding with undefined and lists none for a task without any', async () => {
        await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: null });
        expect(await enrollments.enrollment(taskA, 'k2')).toBeUndefined();
        expect(await enrollments.listEnrollments(taskB)).toEqual([]);
      });

      it('lists a task’s bindings, revoked ones included', async () => {
        const token = await enrollments.createToken(newToken(taskA, 'h-1'));
        await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: token.id });
        await enrollments.enroll({ taskId: taskA, identityKey: 'k2', kind: 'client', tokenId: null });
        await enrollments.enroll({ taskId: taskB, identityKey: 'k3', kind: 'client', tokenId: null });
        await enrollments.revokeEnrollment(taskA, 'k2');
        const listed = (await enrollments.listEnrollments(taskA)).sort((x, y) => x.identityKey.localeCompare(y.identityKey));
        expect(listed.map((e) => [e.identityKey, e.revokedAt === null])).toEqual([['k1', true], ['k2', false]]);
      });

      it('revokes a binding once: true, then false; false for a key never bound', async () => {
        await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: null });
        expect(await enrollments.revokeEnrollment(taskA, 'k1')).toBe(true);
        expectDateString((await enrollments.enrollment(taskA, 'k1'))?.revokedAt);
        expect(await enrollments.revokeEnrollment(taskA, 'k1')).toBe(false);
        expect(await enrollments.revokeEnrollment(taskA, 'k9')).toBe(false);
      });

      it('binds a revoked key afresh when it enrolls again, counting the new token’s use', async () => {
        const first = await enrollments.createToken(newToken(taskA, 'h-1'));
        const second = await enrollments.createToken(newToken(taskA, 'h-2', { kind: 'gpu' }));
        await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: first.id });
        await enrollments.revokeEnrollment(taskA, 'k1');
        const again = await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'gpu', tokenId: second.id });
        expect(again).toMatchObject({ taskId: taskA, identityKey: 'k1', kind: 'gpu', tokenId: second.id, revokedAt: null });
        expect(await enrollments.enrollment(taskA, 'k1')).toEqual(again);
        expect(await uses(first.id)).toBe(1);
        expect(await uses(second.id)).toBe(1);
      });
    });

    it('revokes a token and every binding made with it, and nothing else', async () => {
      const doomed = await enrollments.createToken(newToken(taskA, 'h-1'));
      const kept = await enrollments.createToken(newToken(taskA, 'h-2'));
      await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: doomed.id });
      await enrollments.enroll({ taskId: taskA, identityKey: 'k2', kind: 'client', tokenId: doomed.id });
      const viaKept = await enrollments.enroll({ taskId: taskA, identityKey: 'k3', kind: 'client', tokenId: kept.id });
      const open = await enrollments.enroll({ taskId: taskA, identityKey: 'k4', kind: 'client', tokenId: null });
      await enrollments.revokeToken(doomed.id);
      expectDateString((await enrollments.tokenById(doomed.id))?.revokedAt);
      expectDateString((await enrollments.enrollment(taskA, 'k1'))?.revokedAt);
      expectDateString((await enrollments.enrollment(taskA, 'k2'))?.revokedAt);
      expect(await enrollments.tokenById(kept.id)).toEqual({ ...kept, uses: 1 });
      expect(await enrollments.enrollment(taskA, 'k3')).toEqual(viaKept);
      expect(await enrollments.enrollment(taskA, 'k4')).toEqual(open);
    });

    it('keeps the first revocation times when a token is revoked again', async () => {
      const token = await enrollments.createToken(newToken(taskA, 'h-1'));
      await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: token.id });
      useFakeDate(Date.UTC(2031, 0, 1));
      await enrollments.revokeToken(token.id);
      const before = [(await enrollments.tokenById(token.id))?.revokedAt, (await enrollments.enrollment(taskA, 'k1'))?.revokedAt];
      vi.setSystemTime(Date.UTC(2031, 5, 1));
      await enrollments.revokeToken(token.id);
      expect([(await enrollments.tokenById(token.id))?.revokedAt, (await enrollments.enrollment(taskA, 'k1'))?.revokedAt]).toEqual(before);
    });
  });
}

/** The AuditLog contract: an append-only trail, read newest first in pages. */
export function describeAuditLogConformance(name: string, open: () => Promise<AuditLogHarness>): void {
  describe(`${name}: AuditLog conformance`, () => {
    let harness: AuditLogHarness;
    let audit: AuditLog;
    beforeEach(async () => {
      harness = await open();
      audit = harness.audit;
    });
    afterEach(async () => {
      await harness.close();
    });

    const entry = (action: string, detail: Record<string, unknown> = {}) => ({ actor: 'ada', action, target: 'task 1', detail, ip: '203.0.113.7' });

    it('lists entries newest first, each with an id, a time and its detail as recorded', async () => {
      const detail = { round: 3, accuracy: 0.8125, nested: { list: [1, 'two', null], flag: true }, none: null, text: 'ünïcode ✓' };
      await audit.record(entry('task.create'));
      await audit.record(entry('task.start', detail));
      await audit.record({ actor: 'system', action: 'round.complete', target: 'task 2', detail: {}, ip: '' });
      const listed = await audit.list({ limit: 10 });
      expect(listed.map((e) => e.action)).toEqual(['round.complete', 'task.start', 'task.create']);
      expect(listed[1]).toEqual({ ...entry('task.start', detail), id: listed[1]!.id, at: listed[1]!.at });
      expect(listed[0]).toMatchObject({ actor: 'system', target: 'task 2', ip: '' });
      for (const e of listed) expectDateString(e.at);
      const ids = listed.map((e) => e.id);
      expect(ids.every((id, i) => i === 0 || id < ids[i - 1]!)).toBe(true);
    });

    it('lists at most `limit` entries, the newest', async () => {
      for (let i = 1; i <= 5; i++) await audit.record(entry(`a${i}`));
      expect((await audit.list({ limit: 2 })).map((e) => e.action)).toEqual(['a5', 'a4']);
    });

    it('pages back with beforeId: the entries older than that id', async () => {
      for (let i = 1; i <= 5; i++) await audit.record(entry(`a${i}`));
      const first = await audit.list({ limit: 2 });
      const second = await audit.list({ limit: 2, beforeId: first.at(-1)!.id });
      const third = await audit.list({ limit: 2, beforeId: second.at(-1)!.id });
      expect([first, second, third].map((page) => page.map((e) => e.action))).toEqual([['a5', 'a4'], ['a3', 'a2'], ['a1']]);
      expect(await audit.list({ limit: 2, beforeId: third[0]!.id })).toEqual([]);
    });

    it('lists nothing when the trail is empty', async () => {
      expect(await audit.list({ limit: 10 })).toEqual([]);
    });
  });
}
