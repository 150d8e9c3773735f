import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { io as connect } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enroll } from '../../client/enrollment.ts';
import { buildApp, type App } from '../../server/app.ts';
import { cryptoReady, generateSigningKeyPair } from '../../shared/crypto/sodium.ts';
import type { RoundRecord } from '../../shared/protocol/task.ts';
import { expectRejectsWithCode } from '../support/conformance/common.ts';
import { inProcessClient, startHarness, type Harness } from '../support/harness.ts';
import { startPostgres, type Scratch, type TestPostgres } from '../support/postgres.ts';
import { freePort, startRedis, type TestRedis } from '../support/redis.ts';

/**
 * The server on cluster mode's parts: durable state in a real PostgreSQL, socket.io events
 * through a real Redis (the streams adapter), both started by the test. A round runs and
 * is recorded in PostgreSQL; a dashboard socket on a second server process sees it; when
 * Redis or PostgreSQL goes away /readyz says which, and says ready again once it is back.
 */

describe('serve --database postgres://… --redis redis://…', () => {
  let postgres: TestPostgres;
  let redis: TestRedis;
  let database: Scratch;
  let h: Harness;

  beforeAll(async () => {
    [postgres, redis] = await Promise.all([startPostgres(), startRedis()]);
    database = await postgres.createDatabase();
    h = await startHarness({ databaseUrl: database.url, redisUrl: redis.url });
  }, 120_000);
  afterAll(async () => {
    await h?.close();
    await database?.drop();
    await Promise.all([postgres?.stop(), redis?.close()]);
  });

  const readiness = async (app: App) => {
    const reply = await app.http.inject({ url: '/readyz' });
    return { status: reply.statusCode, body: reply.json() as { ready: boolean; reason?: string } };
  };

  it('runs a round recorded in PostgreSQL, and a dashboard on another process sees it through Redis', { timeout: 240_000 }, async () => {
    // Processes on one machine share the data folder: its server key, secrets key and checkpoints.
    const other = await buildApp({ dataDir: h.dataDir, logger: pino({ level: 'silent' }), databaseUrl: database.url, redisUrl: redis.url });
    const otherUrl = await other.http.listen({ port: 0, host: '127.0.0.1' });
    try {
      // One database: the task made through the first process is the second one's task too.
      const task = await h.createTask({ name: 'on postgres', shards: 2, clientsPerRound: 2, minUpdates: 2, rounds: 1, trainLimit: 2_000, testLimit: 500, seed: 3 });
      expect((await other.store.getTask(task.id))?.spec.name).toBe('on postgres');

      // The harness's admin token, stored in PostgreSQL, opens a dashboard socket on the other process.
      const dashboard = connect(`${otherUrl}/admin`, { transports: ['websocket'], reconnection: false, auth: { token: h.adminToken } });
      const completed = new Promise<RoundRecord>((resolve) => dashboard.on('round:complete', resolve));
      await new Promise<void>((resolve, reject) => {
        dashboard.on('connect', resolve);
        dashboard.on('connect_error', reject);
      });

      const clients = [0, 1].map((shard) => inProcessClient(h, task.id, shard, { seed: 10 + shard }));
      await Promise.all(clients.map((c) => c.start()));
      await h.app.coordinator.start(task.id);
      const record = await completed;
      dashboard.close();
      for (const c of clients) c.stop();

      expect(record).toMatchObject({ taskId: task.id, round: 1, participants: 2 });
      const stored = await other.store.listRounds(task.id);
      expect(stored.map((r) => [r.round, r.participants, r.samples])).toEqual([[1, 2, record.samples]]);
      expect(stored[0]!.accuracy).toBe(record.accuracy);
      await h.waitForStatus(task.id, 'completed');
    } finally {
      await other.close();
    }
  });

  it('reports Redis going away on /readyz, and is ready again when it returns', { timeout: 60_000 }, async () => {
    expect(await readiness(h.app)).toEqual({ status: 200, body: { ready: true } });
    await redis.stop();
    const down = await readiness(h.app);
    expect(down.status).toBe(503);
    expect(down.body.reason).toMatch(/Redis/);
    await redis.start();
    await h.waitFor(async () => (await readiness(h.app)).status === 200, 30_000);
  });

  it('reports PostgreSQL going away on /readyz and answers API calls with DATABASE_UNAVAILABLE, then recovers with its data', { timeout: 60_000 }, async () => {
    const before = await h.app.store.listTasks();
    await postgres.halt();
    const down = await readiness(h.app);
    expect(down.status).toBe(503);
    expect(down.body.reason).toMatch(/database/);
    const listing = await h.asAdmin({ url: '/api/tasks' });
    expect(listing.statusCode).toBe(503);
    expect(listing.json().code).toBe('DATABASE_UNAVAILABLE');
    expect((await h.app.http.inject({ url: '/healthz' })).statusCode).toBe(200); // the process itself is up
    await postgres.resume();
    await h.waitFor(async () => (await readiness(h.app)).status === 200, 30_000);
    expect(await h.app.store.listTasks()).toEqual(before);
  });

  it('refuses a join for now while PostgreSQL is away; the client asks again on the same connection and joins once it is back', { timeout: 60_000 }, async () => {
    const task = await h.createTask({ name: 'joins wait', shards: 2, clientsPerRound: 2, minUpdates: 2, rounds: 1, trainLimit: 200, testLimit: 100, seed: 4 });
    await cryptoReady();
    const identity = generateSigningKeyPair();
    await enroll(h.url, task.id, identity.publicKey, { token: h.token(task.id) });
    await postgres.halt();
    const client = inProcessClient(h, task.id, 0, { identity, enrollment: undefined });
    const dropped: string[] = [];
    client.on('disconnected', ({ reason }) => dropped.push(reason));
    const deferred = new Promise<{ code: string; retryInMs: number }>((resolve) => client.once('join-deferred', resolve));
    const started = client.start();
    try {
      expect(await deferred).toMatchObject({ code: 'DATABASE_UNAVAILABLE' });
      await postgres.resume();
      await started;
      expect(dropped).toEqual([]);
    } finally {
      client.stop();
    }
  });

  it('refuses to start when Redis or PostgreSQL cannot be reached, saying which', { timeout: 60_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tributary-test-'));
    const closed = await freePort();
    try {
      await expectRejectsWithCode(buildApp({ dataDir, logger: pino({ level: 'silent' }), redisUrl: `redis://127.0.0.1:${closed}` }), 'REDIS_UNAVAILABLE');
      await expectRejectsWithCode(buildApp({ dataDir, logger: pino({ level: 'silent' }), databaseUrl: `postgres://postgres:secret@127.0.0.1:${closed}/tributary` }), 'DATABASE_UNAVAILABLE');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
