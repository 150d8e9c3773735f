import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import { buildApp, type App } from './app.ts';
import type { TrustProxy } from './auth/client-address.ts';
import { withTaskDefaults } from '../shared/protocol/task.ts';
import { DEFAULT_DATASET, isBuiltin } from '../shared/data/builtin.ts';
import { parseDatasetDirs } from '../node/dataset-files.ts';
import { redactUrlPassword } from './log-redaction.ts';

/** Connections waiting to be accepted; the kernel caps it at net.core.somaxconn (4,096 on Debian 12). */
const LISTEN_BACKLOG = 4_096;

export interface ServeOptions {
  port: number;
  host: string;
  dataDir: string;
  /** `name=dir` pairs: where built-in data sets' files are (default: where their packages put them). */
  datasetDir: string[];
  chunkKb: number;
  logLevel: string;
  /** pretty: a readable line per event (the default on a terminal); json: one JSON object a line (piped, or for log shippers). */
  logFormat: 'auto' | 'pretty' | 'json';
  /** Create (if there is none) and start a demo task on the default built-in data set. */
  demoTask: boolean;
  /** Let any address scrape /metrics (default: loopback only). */
  metricsPublic: boolean;
  /** Origins of web apps that embed the SDK (CORS for the API and sockets). */
  corsOrigins: string[];
  /** Reverse proxies whose X-Forwarded-* headers are believed (default: none). */
  trustProxy?: TrustProxy;
  /** Where the key sealing TOTP seeds lives (default `totp.key` in dataDir). */
  secretsKeyFile?: string;
  /** `postgres://…`: keep durable state in PostgreSQL (cluster mode) instead of SQLite. */
  database?: string;
  /** `redis://…`: share socket.io events with the other server processes on this Redis (cluster mode). */
  redis?: string;
  /** Seconds a connection may leave a heartbeat unanswered before it counts as lost. */
  heartbeatTimeout?: number;
}

export async function serve(options: ServeOptions): Promise<{ app: App; url: string; demo?: { taskId: number; token: string } }> {
  const logger = createLogger(options.logLevel, options.logFormat);
  const app = await buildApp({
    dataDir: options.dataDir,
    datasetDirs: parseDatasetDirs(options.datasetDir, isBuiltin),
    chunkBytes: options.chunkKb * 1024,
    logger,
    metricsPublic: options.metricsPublic,
    corsOrigins: options.corsOrigins,
    trustProxy: options.trustProxy,
    secretsKeyFile: options.secretsKeyFile,
    databaseUrl: options.database,
    redisUrl: options.redis,
    ...(options.heartbeatTimeout !== undefined ? { heartbeatTimeoutMs: options.heartbeatTimeout * 1000 } : {}),
  });
  // A crowd reconnecting at once (a process died) overflowed Node's default backlog of 511 (SYN cookies, timed-out connects).
  const url = await app.http.listen({ port: options.port, host: options.host, backlog: LISTEN_BACKLOG });
  logger.info({ url, dataDir: options.dataDir, database: options.database ? redactUrlPassword(options.database) : 'sqlite' }, 'tributary server listening');
  // Tasks that were running when the server last stopped carry on from their last completed round.
  await app.coordinator.resumeRunning();
  const setupToken = await app.accounts.setupTokenIfNeeded();
  if (setupToken) {
    console.log(`No admin yet. Create the first one at ${url}/admin/#setup=${setupToken}\n  (or: npx tributary admin create --data-dir ${options.dataDir} --username <name>)`);
  }
  let demo: { taskId: number; token: string } | undefined;
  if (options.demoTask) {
    const tasks = await app.store.listTasks();
    const task = tasks[0] ?? (await app.store.createTask(withTaskDefaults({
      name: `${DEFAULT_DATASET} demo`,
      partition: { kind: 'dirichlet', alpha: 0.5 },
      clientsPerRound: 3,
      shards: 3,
      // Anyone may contribute from the browser page; edge devices get a token.
      openEnrollment: true,
    })));
    const { token } = await app.enrollments.createToken(task.id, { kind: 'client', label: 'demo edge clients', maxUses: 0, expiresInHours: 0 }, { actor: 'system', ip: '' });
    if (!app.coordinator.runner(task.id) && task.status !== 'running' && task.completedRounds < task.spec.rounds) await app.coordinator.start(task.id);
    // The token goes in the environment, not argv: other users of the machine can read argv (ps).
    console.log(`demo task ${task.id} (${task.spec.name}) is running: contribute at ${url}/contribute, or join with\n  TRIBUTARY_TOKEN=${token} npx tributary client --server ${url} --task ${task.id}`);
    demo = { taskId: task.id, token };
  }
  // app.close runs once, whichever signals come (a terminal's Ctrl-C and a supervisor's SIGTERM together).
  const shutdown = async () => {
    await app.close();
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  return { app, url, ...(demo ? { demo } : {}) };
}

/** Readable lines for a person at a terminal, JSON lines for machines. */
export function createLogger(level: string, format: ServeOptions['logFormat']): Logger {
  const readable = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  if (!readable) return pino({ level });
  // In-process (no worker thread), so a line is written before a crash that follows it.
  return pino({ level }, pretty({ colorize: process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname', sync: true }));
}

