import { once } from 'node:events';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { io as connect, type Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TributaryError } from '../../shared/errors.ts';
import { LeaderLease, type LeaseLoss } from '../../server/cluster/leader-lease.ts';
import { connectRedis, type RedisConnection } from '../../server/cluster/redis.ts';
import { attachStreamsAdapter } from '../../server/cluster/socket-adapter.ts';
import { TaskBoard } from '../../server/cluster/task-board.ts';
import { freePort, startRedis, type TestRedis } from '../support/redis.ts';

/** Polls until `condition` holds; the timeout is generous, for a slow shared machine. */
async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 8000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

interface Watched {
  lease: LeaderLease;
  acquired: number[];
  lost: LeaseLoss[];
}

let redis: TestRedis;
const connections: RedisConnection[] = [];
const leases: LeaderLease[] = [];

async function redisConnection(): Promise<RedisConnection> {
  const connection = await connectRedis(redis.url);
  connections.push(connection);
  return connection;
}

function watchedLease(connection: RedisConnection, taskId: string, holderId: string, ttlMs: number, retryMs?: number): Watched {
  const watched: Watched = { lease: undefined as unknown as LeaderLease, acquired: [], lost: [] };
  watched.lease = new LeaderLease({
    redis: connection.client,
    taskId,
    holderId,
    ttlMs,
    ...(retryMs === undefined ? {} : { retryMs }),
    onAcquired: (token) => watched.acquired.push(token),
    onLost: (reason) => watched.lost.push(reason),
  });
  leases.push(watched.lease);
  watched.lease.start();
  return watched;
}

beforeAll(async () => {
  redis = await startRedis();
});

// A test that stopped Redis and failed before starting it again must not fail the next ones too.
afterEach(() => redis.start());

afterAll(async () => {
  for (const lease of leases) lease.abandon();
  await Promise.all(connections.map((c) => c.close()));
  await redis?.close();
});

describe('connectRedis', () => {
  it('fails fast with REDIS_UNAVAILABLE when nothing listens at the address', async () => {
    const port = await freePort();
    const error = await connectRedis(`redis://:secret@127.0.0.1:${port}`, undefined, { startTimeoutMs: 500 }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(TributaryError);
    expect((error as TributaryError).code).toBe('REDIS_UNAVAILABLE');
    expect((error as TributaryError).message).toContain('ECONNREFUSED');
    expect((error as TributaryError).message).not.toContain('secret');
  });

  it('answers ping and reports ready', async () => {
    const connection = await redisConnection();
    expect(connection.ready()).toBe(true);
    expect(await connection.ping()).toBe(true);
  });
});

describe('leader lease', () => {
  it('lets exactly one of two processes hold a task', async () => {
    const connection = await redisConnection();
    // Short enough to renew several times in the window, long enough that a stalled test worker does not lose it.
    const a = watchedLease(connection, 'one', 'a', 1500);
    const b = watchedLease(connection, 'one', 'b', 1500);
    await waitFor(() => a.acquired.length + b.acquired.length > 0, 'a leader');
    // Watch over three renewal periods: one holder, never two, no loss.
    const until = performance.now() + 1600;
    while (performance.now() < until) {
      expect(Number(a.lease.holds()) + Number(b.lease.holds())).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(a.acquired.length + b.acquired.length).toBe(1);
    expect([...a.lost, ...b.lost]).toEqual([]);
    a.lease.abandon();
    b.lease.abandon();
  });

  it('passes a paused holder’s lease on after its ttl, and refuses the paused holder’s fenced write', async () => {
    const connection = await redisConnection();
    const ttl = 400;
    const a = watchedLease(connection, 'paused', 'a', ttl);
    await waitFor(() => a.acquired.length === 1, 'a to lead');
    const b = watchedLease(connection, 'paused', 'b', ttl);
    const oldToken = a.acquired[0]!;
    expect(await b.lease.isCurrent(oldToken)).toBe(true);

    // a freezes: its timers stop, nothing is released; b takes over only once the key expires.
    a.lease.abandon();
    await waitFor(() => b.acquired.length === 1, 'b to take over');
    expect(a.lost).toEqual([]); // a frozen process hears nothing
    const newToken = b.acquired[0]!;
    expect(newToken).toBeGreaterThan(oldToken);

    expect(await a.lease.isCurrent(oldToken)).toBe(false);
    expect(await a.lease.fencedSet(oldToken, 'tributary:test:paused', 'from the old leader')).toBe(false);
    expect(await b.lease.fencedSet(newToken, 'tributary:test:paused', 'from the new leader')).toBe(true);
    expect(await connection.client.get('tributary:test:paused')).toBe('from the new leader');
    b.lease.abandon();
  });

  it('hands over at once on release, with strictly increasing tokens', async () => {
    const connection = await redisConnection();
    // A ttl longer than the wait for each handover: a handover within the wait came from the release, not from expiry.
    const a = watchedLease(connection, 'release', 'a', 120_000, 50);
    const b = watchedLease(connection, 'release', 'b', 120_000, 50);
    await waitFor(() => a.acquired.length + b.acquired.length === 1, 'a first leader');
    const tokens: number[] = [];
    for (let handover = 0; handover < 3; handover++) {
      const [holder, other] = a.lease.holds() ? [a, b] : [b, a];
      tokens.push(holder.lease.token!);
      const count = other.acquired.length;
      await holder.lease.release();
      await waitFor(() => other.acquired.length > count, 'the other to take over', 30_000);
      holder.lease.start();
    }
    tokens.push((a.lease.token ?? b.lease.token)!);
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]!).toBeGreaterThan(tokens[i - 1]!);
    expect([...a.lost, ...b.lost]).toEqual([]);
    a.lease.abandon();
    b.lease.abandon();
  });

  it('gives the lease up when Redis stays away past the ttl, and a new holder gets a larger token after an empty restart', async () => {
    const connection = await redisConnection();
    const ttl = 400;
    const a = watchedLease(connection, 'outage', 'a', ttl);
    await waitFor(() => a.acquired.length === 1, 'a to lead');
    const oldToken = a.acquired[0]!;

    await redis.stop();
    await waitFor(() => a.lost.length === 1, 'a to report the loss');
    expect(a.lost).toEqual(['expired']);
    expect(a.lease.holds()).toBe(false);
    a.lease.abandon();

    // Redis comes back empty: the fence counter is gone. A fresh process, which has seen no token, still gets a larger one.
    await redis.start();
    const fresh = await redisConnection();
    const c = watchedLease(fresh, 'outage', 'c', ttl);
    await waitFor(() => c.acquired.length === 1, 'c to lead');
    expect(c.acquired[0]!).toBeGreaterThan(oldToken);
    expect(await c.lease.isCurrent(oldToken)).toBe(false);
    await waitFor(() => connection.ready(), 'the first connection to reconnect');
    c.lease.abandon();
  });
});

describe('socket.io streams adapter', () => {
  const https: HttpServer[] = [];
  const ios: Server[] = [];
  const clients: Socket[] = [];

  async function node(): Promise<{ io: Server; url: string }> {
    const http = createServer();
    const io = new Server(http, { serveClient: false });
    attachStreamsAdapter(io, (await redisConnection()).client, { blockTimeInMs: 500 });
    io.on('connection', (socket) => void socket.join('task:1'));
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    https.push(http);
    ios.push(io);
    return { io, url: `http://127.0.0.1:${(http.address() as AddressInfo).port}` };
  }

  async function client(url: string): Promise<Socket> {
    const socket = connect(url, { transports: ['websocket'], reconnection: false });
    clients.push(socket);
    await next(socket, 'connect');
    return socket;
  }

  const next = (socket: Socket, event: string) => new Promise<unknown[]>((resolve) => socket.once(event, (...args: unknown[]) => resolve(args)));

  /** Emits until the client hears it: a stream reader starts (or resumes) at its own pace. */
  async function deliveredOnce(send: (n: number) => void, socket: Socket, event: string, what: string): Promise<void> {
    let heard = false;
    const listener = () => (heard = true);
    socket.on(event, listener);
    let n = 0;
    try {
      await waitFor(async () => {
        if (!heard) send(n++);
        await new Promise((resolve) => setTimeout(resolve, 100));
        return heard;
      }, what, 10_000);
    } finally {
      socket.off(event, listener);
    }
  }

  afterAll(async () => {
    for (const socket of clients) socket.disconnect();
    await Promise.all(ios.map((io) => io.close()));
    for (const http of https) http.closeAllConnections();
  });

  it('hands a partial in across a Redis outage shorter than the round\'s wait, and gives up after it', async () => {
    const board = new TaskBoard((await redisConnection()).client);
    const bytes = Uint8Array.from({ length: 1 << 20 }, (_, i) => i % 251);
    await redis.stop();
    const handedIn = board.putPartial(9, '1.1.0', 'p1', bytes, Date.now() + 30_000);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await redis.start();
    await handedIn;
    expect((await board.partials(9, '1.1.0', ['p1'])).get('p1')).toEqual(bytes);
    await redis.stop();
    // A wait already over: one try, then the error (Redis is down, so no machine's speed changes it).
    await expect(board.putPartial(9, '1.2.0', 'p1', bytes, 0)).rejects.toMatchObject({ code: 'REDIS_UNAVAILABLE' });
    await redis.start();
  });

  it('carries room broadcasts and direct emits to clients of another process, also after a Redis restart', async () => {
    const a = await node();
    const b = await node();
    const onA = await client(a.url);
    const onB = await client(b.url);

    await deliveredOnce((n) => a.io.to('task:1').emit('news', n), onB, 'news', 'a broadcast from A to reach B');
    const direct = next(onB, 'direct');
    a.io.to(onB.id!).emit('direct', 'for B only');
    expect(await direct).toEqual(['for B only']);
    const back = next(onA, 'direct');
    b.io.to(onA.id!).emit('direct', 'for A only');
    expect(await back).toEqual(['for A only']);
    expect((await a.io.fetchSockets()).map((s) => s.id).sort()).toEqual([onA.id, onB.id].sort());

    await redis.stop();
    await waitFor(() => connections.every((c) => !c.ready()), 'the connections to notice the outage');
    await redis.start();
    await deliveredOnce((n) => a.io.to('task:1').emit('news', n), onB, 'news', 'broadcasts to flow again after the restart');
    await deliveredOnce((n) => b.io.to(onA.id!).emit('direct', n), onA, 'direct', 'direct emits to flow again after the restart');
  });
});
