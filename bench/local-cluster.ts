import type { ChildProcess } from 'node:child_process';
import { createClient } from 'redis';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { exitsWithin, requireBinaries, stopChild } from '../cli/local-servers/child.ts';
import { NGINX_BINARY, startNginx, type LocalNginx } from '../cli/local-servers/nginx.ts';
import { POSTGRES_BINARY, startPostgres, type LocalPostgres } from '../cli/local-servers/postgres.ts';
import { REDIS_BINARY, startRedis, type LocalRedis } from '../cli/local-servers/redis.ts';
import { freePort, operatorToken, spawnTributary, waitForHealth } from '../cli/processes.ts';
import { leaseKey } from '../server/cluster/leader-lease.ts';

/**
 * A cluster for a bench to drive: Redis, PostgreSQL, N `tributary serve` processes sharing
 * them and one server folder, nginx (deploy/nginx.conf) in front, all in `dir` on loopback.
 * Unlike `tributary cluster` nothing restarts by itself: the bench kills and starts
 * processes when it means to.
 */
export interface BenchCluster {
  /** nginx: the address clients use. */
  url: string;
  servers: BenchServer[];
  redis: LocalRedis;
  /** The PostgreSQL URL the servers share (password included). */
  database: string;
  /** An operator API token (accounts live in the database). */
  operator: string;
  /** The server holding the task's leader lease now; undefined while nobody (alive) holds it. */
  leaderOf(taskId: number): Promise<BenchServer | undefined>;
  stop(): Promise<void>;
}

export interface BenchServer {
  readonly index: number;
  /** Its own address (its /metrics answers loopback). */
  readonly url: string;
  readonly log: string;
  child(): ChildProcess | undefined;
  /** Spawns it (again, on the same port) and waits for /healthz. */
  start(): Promise<void>;
  /** Sends `signal` and waits for it to exit (SIGKILL after 10 s). */
  kill(signal: NodeJS.Signals): Promise<void>;
}

export interface BenchClusterOptions {
  processes: number;
  dir: string;
  logLevel?: string;
  /** Extra environment for the servers (MALLOC_ARENA_MAX, say). */
  env?: NodeJS.ProcessEnv;
  /** Connections nginx may hold (two a client); default the shipped config's. */
  connections?: number;
  /** More `tributary serve` flags for every process. */
  serveArgs?: string[];
}

export async function startBenchCluster(options: BenchClusterOptions): Promise<BenchCluster> {
  requireBinaries([REDIS_BINARY, POSTGRES_BINARY, NGINX_BINARY]);
  const serverDir = join(options.dir, 'server');
  mkdirSync(serverDir, { recursive: true });
  // Run as root, PostgreSQL runs as the postgres user, who must reach its folder (mkdtemp makes 0700).
  chmodSync(options.dir, 0o755);
  let redis: LocalRedis | undefined;
  let postgres: LocalPostgres | undefined;
  let nginx: LocalNginx | undefined;
  const servers: BenchServer[] = [];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.kill('SIGTERM').catch(() => {})));
    await nginx?.stop().catch(() => {});
    await postgres?.stop().catch(() => {});
    await redis?.close().catch(() => {});
  };
  try {
    redis = await startRedis({ dir: join(options.dir, 'redis') });
    postgres = await startPostgres({ dir: join(options.dir, 'postgres'), auth: 'password' });
    const database = await postgres.ensureDatabase('tributary');
    const env = { ...process.env, ...options.env, TRIBUTARY_DATABASE: database, TRIBUTARY_REDIS: redis.url };
    // One at a time: the first creates the tables and the shared keys the others then read.
    for (let i = 0; i < options.processes; i++) {
      const server = benchServer(i, await freePort(), serverDir, env, options);
      servers.push(server);
      await server.start();
    }
    nginx = await startNginx(servers.map((s) => s.url.replace('http://', '')), { dir: join(options.dir, 'nginx'), ...(options.connections ? { connections: options.connections } : {}) });
    const leaderOf = (taskId: number) => leaseHolder(redis!.url, taskId, servers);
    return { url: nginx.url, servers, redis, database, operator: operatorToken(serverDir, env), leaderOf, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

function benchServer(index: number, port: number, serverDir: string, env: NodeJS.ProcessEnv, options: BenchClusterOptions): BenchServer {
  const url = `http://127.0.0.1:${port}`;
  const log = join(options.dir, `server-${index}.log`);
  const args = ['serve', '--port', String(port), '--data-dir', serverDir, '--trust-proxy', 'loopback', '--log-level', options.logLevel ?? 'warn', ...(options.serveArgs ?? [])];
  let child: ChildProcess | undefined;
  let starts = 0;
  // If the bench dies without stopping it, neither does the server outlive it.
  process.once('exit', () => child?.kill('SIGKILL'));
  return {
    index,
    url,
    log,
    child: () => child,
    start: async () => {
      child = spawnTributary(args, log, env, starts++ > 0);
      await waitForHealth(url, child);
    },
    kill: async (signal) => {
      const running = child;
      if (!running || running.exitCode !== null || running.signalCode !== null) return;
      running.kill(signal);
      if (!(await exitsWithin(running, 10_000))) await stopChild(running, 'SIGKILL', 0);
    },
  };
}

/**
 * Reads the task's lease from Redis, on a connection of its own that gives up at once if
 * Redis is away. Its value is "<token> <holder>", the holder a process id of the form
 * host:pid:nonce (newProcessId); a holder killed since is nobody's current child.
 */
async function leaseHolder(redisUrl: string, taskId: number, servers: readonly BenchServer[]): Promise<BenchServer | undefined> {
  const client = createClient({ url: redisUrl, socket: { connectTimeout: 2_000, reconnectStrategy: false } });
  client.on('error', () => {}); // a failed connect rejects connect() below
  try {
    await client.connect();
    const value = await client.get(leaseKey(taskId));
    const pid = Number(value?.split(' ')[1]?.split(':').at(-2));
    return servers.find((s) => s.child()?.pid === pid && s.child()?.exitCode === null && s.child()?.signalCode === null);
  } catch {
    return undefined;
  } finally {
    if (client.isOpen) client.destroy();
  }
}
