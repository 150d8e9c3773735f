import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { freePort, spawnTributary, waitForHealth } from './processes.ts';
import { exitsWithin, requireBinaries, stopChild } from './local-servers/child.ts';
import { ensurePortFree, NGINX_BINARY, startNginx, type LocalNginx } from './local-servers/nginx.ts';
import { POSTGRES_BINARY, startPostgres, type LocalPostgres } from './local-servers/postgres.ts';
import { REDIS_BINARY, startRedis, type LocalRedis } from './local-servers/redis.ts';

/**
 * `tributary cluster`: a whole cluster on this machine, for trying cluster mode. Redis,
 * PostgreSQL and N `tributary serve` processes sharing them and one server folder, nginx
 * (deploy/nginx.conf) in front; a process that dies is started again; Ctrl-C stops it all.
 */

export interface ClusterOptions {
  processes: number;
  /** nginx's port, the cluster's one address. */
  port: number;
  dataDir: string;
  demoTask: boolean;
  logLevel: string;
}

/** How long a dead server process stays down before it is started again. */
const RESTART_DELAY_MS = 1_000;
/** Restarts in a row that die before answering /healthz, after which the process is left down. */
const MAX_FAILED_RESTARTS = 3;

interface Cluster {
  redis?: LocalRedis;
  postgres?: LocalPostgres;
  servers: ServerProcess[];
  nginx?: LocalNginx;
}

export async function runCluster(options: ClusterOptions): Promise<void> {
  const dataDir = resolve(options.dataDir);
  const cluster: Cluster = { servers: [] };
  let stopping = false;
  const shutdown = async (signal: NodeJS.Signals) => {
    if (stopping) {
      console.error(`${signal} again: killing everything`);
      process.exit(1); // the local servers are killed as this process exits
    }
    stopping = true;
    console.log(`\n${signal}: stopping the cluster (again to kill it)`);
    // A Ctrl-C at a terminal reaches the server processes too: they share this process group.
    await stopCluster(cluster, signal === 'SIGINT' && process.stdin.isTTY === true);
    console.log('cluster stopped');
    process.exit(0);
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  try {
    await startCluster(cluster, dataDir, options);
  } catch (error) {
    if (stopping) return;
    console.error(`tributary cluster: ${(error as Error).message}`);
    await stopCluster(cluster);
    process.exit(1);
  }
}

async function startCluster(cluster: Cluster, dataDir: string, options: ClusterOptions): Promise<void> {
  requireBinaries([REDIS_BINARY, POSTGRES_BINARY, NGINX_BINARY]);
  // Before anything starts (nginx, the last to start, checks again).
  await ensurePortFree(options.port).catch((error: Error) => {
    throw new Error(`${error.message}: choose another with --port`);
  });
  // Paths as the user gave them: below this folder relative to it, elsewhere whole.
  const shown = (path: string) => (path.startsWith(process.cwd() + sep) ? relative(process.cwd(), path) : path);
  const serverDir = join(dataDir, 'server');
  mkdirSync(serverDir, { recursive: true });

  cluster.redis = await startRedis({ dir: join(dataDir, 'redis') });
  console.log(`redis       ${cluster.redis.url}  (${shown(join(dataDir, 'redis'))})`);
  cluster.postgres = await startPostgres({ dir: join(dataDir, 'postgres'), auth: 'password' });
  const database = await cluster.postgres.ensureDatabase('tributary');
  const passwordFile = shown(join(dataDir, 'postgres', 'password'));
  console.log(`postgres    ${database.replace(/:[^:@/]*@/, '@')}  (${shown(join(dataDir, 'postgres'))}; the password is in ${passwordFile})`);

  // The URLs go in the environment, not argv: other users of the machine can read argv (ps).
  const env = { ...process.env, TRIBUTARY_DATABASE: database, TRIBUTARY_REDIS: cluster.redis.url };
  // One at a time: the first creates the tables and the shared keys the others then read.
  for (let i = 0; i < options.processes; i++) {
    const port = await freePort();
    const args = ['serve', '--port', String(port), '--data-dir', serverDir, '--trust-proxy', 'loopback', '--log-level', options.logLevel, ...(i === 0 && options.demoTask ? ['--demo-task'] : [])];
    const server = serverProcess(i, port, args, env, join(dataDir, `server-${i}.log`));
    cluster.servers.push(server);
    await server.start();
    console.log(`server ${i}    up (pid ${server.pid()})`);
  }

  cluster.nginx = await startNginx(cluster.servers.map((s) => s.url.replace('http://', '')), { port: options.port, dir: join(dataDir, 'nginx') });
  console.log(`nginx       ${cluster.nginx.url}  (${shown(join(dataDir, 'nginx'))}: nginx.conf, access.log, error.log)`);
  const adminCreate = `TRIBUTARY_DATABASE=postgres://postgres:$(cat ${passwordFile})@127.0.0.1:${cluster.postgres.port}/tributary npx tributary admin create --data-dir ${shown(serverDir)} --username <name>`;
  printSummary(cluster.nginx.url, cluster.servers, adminCreate, shown, dataDir);
}

function printSummary(front: string, servers: readonly ServerProcess[], adminCreate: string, shown: (path: string) => string, dataDir: string): void {
  const first = servers[0]!;
  // What the first process told its log for a person (the setup link, the demo task), through the front address;
  // not its `admin create` hint, which names the SQLite folder alone.
  const notes = readFileSync(first.log, 'utf8').split('\n').filter((line) => line.trim() && !line.startsWith('{') && !line.includes('tributary admin create'));
  console.log(`
Tributary cluster: ${servers.length} server process${servers.length > 1 ? 'es' : ''} behind ${front}
${servers.map((s, i) => `  server ${i}  ${s.url}  log ${shown(s.log)}`).join('\n')}
State in ${shown(dataDir)}/; server/ is the folder all of them share (server key, TOTP key); checkpoints are in PostgreSQL.
${notes.map((line) => line.replaceAll(first.url, front)).join('\n')}
Accounts live in the database:
  ${adminCreate}
Kill a server process to see it restarted; Ctrl-C stops everything.`);
}

/** Servers first (they let go of Redis and the database), then nginx, PostgreSQL, Redis. */
async function stopCluster(cluster: Cluster, serversSignalled = false): Promise<void> {
  const steps: Array<() => Promise<unknown>> = [
    () => Promise.all(cluster.servers.map((s) => s.stop(serversSignalled))),
    async () => cluster.nginx?.stop(),
    async () => cluster.postgres?.stop(),
    async () => cluster.redis?.close(),
  ];
  for (const step of steps) await step().catch((error: Error) => console.error(`while stopping: ${error.message}`));
}

interface ServerProcess {
  readonly url: string;
  readonly log: string;
  pid(): number | undefined;
  /** Starts it and waits for /healthz; from then on it is started again whenever it dies. */
  start(): Promise<void>;
  /** SIGTERM, or, if it has had a signal already, time to finish first (a second signal would stop it twice). */
  stop(signalled: boolean): Promise<void>;
}

/** One `tributary serve` of the cluster, kept running. */
function serverProcess(index: number, port: number, args: string[], env: NodeJS.ProcessEnv, log: string): ServerProcess {
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let watching = false;
  let stopping = false;
  let failedRestarts = 0;
  // If this launcher dies without stopping it, neither does the server outlive it.
  process.once('exit', () => child?.kill('SIGKILL'));

  /** Spawns it and waits for /healthz; true if it is still the current process then. */
  const launch = async (restart: boolean) => {
    const current = spawnTributary(args, log, env, restart);
    child = current;
    current.once('exit', (code, signal) => {
      if (watching && !stopping && current === child) restartLater(signal ? `signal ${signal}` : `exit code ${code}`);
    });
    await waitForHealth(url, current);
    return current === child;
  };

  const restartLater = (how: string) => {
    if (failedRestarts >= MAX_FAILED_RESTARTS) {
      console.error(`server ${index} (${url}) died (${how}) again, ${failedRestarts} restarts in a row that never came up: leaving it down (see ${log})`);
      return;
    }
    console.error(`server ${index} (${url}) died (${how}); restarting it in ${RESTART_DELAY_MS / 1000} s`);
    failedRestarts++;
    setTimeout(() => {
      if (stopping) return;
      launch(true).then(
        (current) => {
          if (!current) return;
          failedRestarts = 0;
          console.log(`server ${index} restarted: ${url} (pid ${child?.pid})`);
        },
        () => {}, // its exit is reported (and answered) by the exit handler
      );
    }, RESTART_DELAY_MS);
  };

  return {
    url,
    log,
    pid: () => child?.pid,
    start: async () => {
      // Its log may hold a setup link: for the owner's eyes only.
      writeFileSync(log, '', { mode: 0o600 });
      chmodSync(log, 0o600);
      try {
        await launch(false);
      } catch (error) {
        throw new Error(`server ${index} did not start: ${(error as Error).message} (see ${log})`);
      }
      watching = true;
    },
    stop: async (signalled) => {
      stopping = true;
      if (!child || (signalled && (await exitsWithin(child, 10_000)))) return;
      await stopChild(child, 'SIGTERM', 10_000);
    },
  };
}
