import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresDatabase } from '../../server/store/postgres/database.ts';
import { openPostgresStores, type PostgresStores } from '../../server/store/postgres/open.ts';
import { TributaryError } from '../../shared/errors.ts';
import { withTaskDefaults, type RoundRecord } from '../../shared/protocol/task.ts';
import { describeAccountStoreConformance } from '../support/conformance/account-store.ts';
import { describeAuditLogConformance } from '../support/conformance/audit-log.ts';
import { describeCheckpointStoreConformance } from '../support/conformance/checkpoint-store.ts';
import { expectRejectsWithCode } from '../support/conformance/common.ts';
import { describeEnrollmentStoreConformance } from '../support/conformance/enrollment-store.ts';
import { describeStoreConformance } from '../support/conformance/store.ts';
import { startPostgres, type TestPostgres } from '../support/postgres.ts';

/** One real PostgreSQL for the file; every test gets a database of its own. */
let server: TestPostgres;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server?.stop();
});

/**
 * Stores over a fresh schema (a database of its own where a test needs one); `close`
 * closes every opening of it and drops it.
 */
async function freshDatabase(kind: 'schema' | 'database' = 'schema') {
  const scratch = kind === 'schema' ? await server.createSchema() : await server.createDatabase();
  const opened: PostgresStores[] = [];
  const open = async () => {
    const stores = await openPostgresStores(scratch.url);
    opened.push(stores);
    return stores;
  };
  return {
    open,
    close: async () => {
      for (const stores of opened) await stores.close();
      await scratch.drop();
    },
  };
}

describeStoreConformance('PostgresStore', async () => {
  const db = await freshDatabase();
  const { store } = await db.open();
  return {
    store,
    reopen: async () => {
      await store.close();
      return (await db.open()).store;
    },
    close: db.close,
  };
});

describeCheckpointStoreConformance('PostgresCheckpoints', async () => {
  const db = await freshDatabase();
  const { checkpoints, store } = await db.open();
  return { checkpoints, tasks: store, fenced: true, close: db.close };
});

describeAccountStoreConformance('PostgresAccounts', async () => {
  const db = await freshDatabase();
  return { accounts: (await db.open()).accounts, close: db.close };
});

describeEnrollmentStoreConformance('PostgresEnrollments', async () => {
  const db = await freshDatabase();
  const { enrollments, store } = await db.open();
  return { enrollments, tasks: store, close: db.close };
});

describeAuditLogConformance('PostgresAudit', async () => {
  const db = await freshDatabase();
  return { audit: (await db.open()).audit, close: db.close };
});

async function unusedPort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

const round = (taskId: number, n: number): RoundRecord => ({
  taskId, round: n, participants: 1, dropped: 0, late: 0, rejected: 0, samples: 10, staleness: 0, accuracy: 0.5, loss: 1, metrics: { accuracy: 0.5, loss: 1 },
  federated: null, uploadBytes: 100, uploadBytesPerParam: 1, durationMs: 5, finishedAt: new Date().toISOString(), rule: 'mean → fedavg', discarded: [], epsilon: null, clipNorm: null,
});

describe('PostgreSQL stores', () => {
  it('refuses to open an unreachable database with DATABASE_UNAVAILABLE naming its host and port, and not its password', async () => {
    const port = await unusedPort();
    const error = await openPostgresStores(`postgres://tributary:hunter2@127.0.0.1:${port}/tributary`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TributaryError);
    expect(error).toMatchObject({ code: 'DATABASE_UNAVAILABLE', status: 503 });
    expect((error as Error).message).toContain(`127.0.0.1:${port}`);
    expect((error as Error).message).not.toContain('hunter2');
  });

  it('refuses a database that does not exist on a running server with DATABASE_UNAVAILABLE', async () => {
    await expectRejectsWithCode(openPostgresStores(server.url('no_such_database')), 'DATABASE_UNAVAILABLE');
  });

  it('answers a query that waited out the pool for a connection with DATABASE_UNAVAILABLE', async () => {
    const scratch = await server.createSchema();
    const db = await PostgresDatabase.open(scratch.url, { maxConnections: 1, connectTimeoutMs: 200 });
    try {
      // The pool's one connection is held by a transaction: the next query cannot get one.
      await db.transaction(() => expectRejectsWithCode(db.rows('SELECT 1'), 'DATABASE_UNAVAILABLE'));
    } finally {
      await db.close();
      await scratch.drop();
    }
  });

  it('creates the schema once when two processes open one new database at the same moment', async () => {
    const db = await freshDatabase('database');
    const [a, b] = await Promise.all([db.open(), db.open()]);
    const task = await a.store.createTask(withTaskDefaults({ name: 'shared' }));
    expect(await b.store.getTask(task.id)).toEqual(task);
    await db.close();
  });

  it('answers a second user of one name with USER_EXISTS and a round of an unknown task with TASK_NOT_FOUND (SQLite: a plain error)', async () => {
    const db = await freshDatabase();
    const { accounts, store } = await db.open();
    const user = { username: 'ada', role: 'admin' as const, passwordHash: 'h', totpSecret: 's', totpLastStep: 0, recoveryHashes: [], disabled: false };
    await accounts.createUser(user);
    await expectRejectsWithCode(accounts.createUser(user), 'USER_EXISTS');
    await expectRejectsWithCode(store.completeRound(round(999, 1)), 'TASK_NOT_FOUND');
    await db.close();
  });

  it('refuses text holding a NUL character, which PostgreSQL cannot store, with BAD_REQUEST; inside JSON it is kept', async () => {
    const db = await freshDatabase();
    const { audit } = await db.open();
    await expectRejectsWithCode(audit.record({ actor: 'a\0b', action: 'x', target: '', detail: {}, ip: '' }), 'BAD_REQUEST');
    await audit.record({ actor: 'a', action: 'x', target: '', detail: { name: 'a\0b' }, ip: '' });
    expect((await audit.list({ limit: 1 }))[0]?.detail).toEqual({ name: 'a\0b' });
    await db.close();
  });

  it('binds a key once when several devices enroll it at the same moment, counting one use of the token', async () => {
    const db = await freshDatabase();
    const { enrollments, store } = await db.open();
    const task = await store.createTask(withTaskDefaults({ name: 'racing' }));
    const token = await enrollments.createToken({ taskId: task.id, kind: 'client', label: 'race', tokenHash: 'h', createdBy: 'ada', expiresAt: null, maxUses: 0 });
    const made = await Promise.all([1, 2, 3, 4].map(() => enrollments.enroll({ taskId: task.id, identityKey: 'k', kind: 'client', tokenId: token.id })));
    expect(new Set(made.map((e) => JSON.stringify(e))).size).toBe(1);
    expect((await enrollments.tokenById(token.id))?.uses).toBe(1);
    await db.close();
  });

  it('survives a PostgreSQL restart: calls during the outage fail with DATABASE_UNAVAILABLE, the next ones after it work', async () => {
    const db = await freshDatabase();
    const { store, audit } = await db.open();
    const task = await store.createTask(withTaskDefaults({ name: 'durable' }));
    await store.completeRound(round(task.id, 1));
    await audit.record({ actor: 'system', action: 'before', target: '', detail: {}, ip: '' });

    await server.halt(); // the pool's idle connections die here: their 'error' events must not end the process
    await expectRejectsWithCode(store.getTask(task.id), 'DATABASE_UNAVAILABLE');
    await expectRejectsWithCode(store.completeRound(round(task.id, 2)), 'DATABASE_UNAVAILABLE');

    await server.resume();
    expect((await store.getTask(task.id))?.completedRounds).toBe(1);
    await store.completeRound(round(task.id, 2));
    expect((await store.listRounds(task.id)).map((r) => r.round)).toEqual([1, 2]);
    await audit.record({ actor: 'system', action: 'after', target: '', detail: {}, ip: '' });
    expect((await audit.list({ limit: 5 })).map((e) => e.action)).toEqual(['after', 'before']);
    await db.close();
  });
});
