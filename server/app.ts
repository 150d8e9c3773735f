import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifyCors from '@fastify/cors';
import fastifyHelmet from '@fastify/helmet';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { Server } from 'socket.io';
import { cryptoReady } from '../shared/crypto/sodium.ts';
import { datasetFiles, type DatasetDirs } from '../node/dataset-files.ts';
import { BuiltinSplits } from './data/splits.ts';
import { EvaluationSets } from './data/evaluation-sets.ts';
import { TributaryError } from '../shared/errors.ts';
import { installAccessControl, SESSION_COOKIE, type RouteRule } from './auth/access.ts';
import { Accounts } from './auth/accounts.ts';
import { clientAddress, type TrustProxy } from './auth/client-address.ts';
import { Enrollments } from './auth/enrollment.ts';
import type { AuditLog } from './auth/model.ts';
import { stateSeedBox } from './auth/secrets-key.ts';
import { loadOrCreateServerKey } from './auth/server-key.ts';
import { heldOutTestSets } from './data/test-sets.ts';
import { adminNamespace, socketRoundEvents } from './gateway/admin-namespace.ts';
import type { AddressLimitOptions } from './gateway/address-limits.ts';
import { ClientRegistry } from './gateway/clients.ts';
import { attachGateway, type ClientServer } from './gateway/gateway.ts';
import { redactUrl } from './log-redaction.ts';
import { createMetrics } from './metrics.ts';
import { Checkpoints } from './rounds/checkpoints.ts';
import { FileCheckpointStore } from './rounds/checkpoint-store.ts';
import { Coordinator } from './rounds/coordinator.ts';
import { auditRoundEvents, fanOutRoundEvents } from './rounds/round-events.ts';
import { Scheduler } from './rounds/scheduler.ts';
import { initServerBackend } from './rounds/tf-backend.ts';
import { apiRoutes } from './routes/api.ts';
import { installErrorHandler } from './routes/errors.ts';
import { healthRoutes } from './routes/health.ts';
import { DEFAULT_WEB_ROOT, webPages } from './routes/pages.ts';
import { UnmaskPool } from './secagg/unmask-pool.ts';
import { openDatabase } from './store/database.ts';
import { SqliteAccounts } from './store/sqlite-accounts.ts';
import { SqliteAudit } from './store/sqlite-audit.ts';
import { SqliteEnrollments } from './store/sqlite-enrollments.ts';
import { SqliteStore } from './store/sqlite-store.ts';
import { openPostgresStores } from './store/postgres/open.ts';
import { connectRedis } from './cluster/redis.ts';
import { attachStreamsAdapter } from './cluster/socket-adapter.ts';
import { newProcessId } from './cluster/leader-lease.ts';
import { TaskBoard } from './cluster/task-board.ts';
import { SessionDirectory } from './cluster/session-directory.ts';
import type { Store } from './store/store.ts';

/** socket.io's own default. */
const DEFAULT_HEARTBEAT_TIMEOUT_MS = 20_000;

export interface AppOptions {
  /** Where the SQLite file and checkpoints live. */
  dataDir: string;
  /** Folders of the built-in data sets (held-out test sets, demo shards); each defaults to where its package puts it. */
  datasetDirs?: DatasetDirs;
  /** Largest upload chunk a client may send; the socket message limit follows from it. */
  chunkBytes?: number;
  logger?: Logger;
  /** Serve /metrics to any address; by default only loopback may scrape it. */
  metricsPublic?: boolean;
  /** How long a disconnected client keeps its session for a reconnect (default 30 s). */
  sessionGraceMs?: number;
  /** How long a connection may go without answering a heartbeat before it counts as lost (socket.io's pingTimeout, default 20 s). */
  heartbeatTimeoutMs?: number;
  /** Origins (besides the server's own) whose pages may call the API and connect sockets: web apps embedding the SDK. */
  corsOrigins?: string[];
  /** Per-connection socket message budget (default 50 a second, bursts of 200). */
  messageRate?: { perSecond: number; burst: number };
  /** Per-address socket connections and shared message budget (default 64; 200 a second, bursts of 800). */
  addressLimits?: AddressLimitOptions;
  /** The built web app to serve (default dist/web); when it is missing, the pages say to build it. */
  webRoot?: string;
  /** Proxies whose X-Forwarded-For/-Proto/-Host are believed (Fastify's trustProxy; see client-address.ts). Default: none. */
  trustProxy?: TrustProxy;
  /** The key TOTP seeds are sealed with (default `totp.key` in dataDir). */
  secretsKeyFile?: string;
  /** `postgres://…`: durable state in PostgreSQL instead of the SQLite file under dataDir (cluster mode). */
  databaseUrl?: string | undefined;
  /** `redis://…`: socket.io events reach clients on every server process sharing this Redis (cluster mode). */
  redisUrl?: string | undefined;
}

export interface App {
  http: FastifyInstance;
  io: ClientServer;
  store: Store;
  accounts: Accounts;
  enrollments: Enrollments;
  audit: AuditLog;
  coordinator: Coordinator;
  /** Every HTTP route with its access rule. */
  routes(): RouteRule[];
  close(): Promise<void>;
}

/** Two info lines per request drown what a person reads: access lines go to debug, failures stay errors. */
class QuietRequestLogs extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null, request: { log: FastifyBaseLogger; method: string; url: string }, reply: { statusCode: number; elapsedTime: number }): void {
    if (error) request.log.error({ err: error, url: redactUrl(request.url) }, 'request errored');
    else request.log.debug({ method: request.method, url: redactUrl(request.url), statusCode: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  }
}

/** The HTTP server, and the socket.io server that shares it. */
function createServers(log: Logger, chunkBytes: number, corsOrigins: string[], trustProxy: TrustProxy, heartbeatTimeoutMs: number): { http: FastifyInstance; io: ClientServer } {
  const http = Fastify({
    trustProxy,
    loggerInstance: log as FastifyBaseLogger,
    logController: new QuietRequestLogs(),
    bodyLimit: 1024 * 1024,
    // Reject unknown fields instead of silently dropping them (which also breaks unions).
    ajv: { customOptions: { removeAdditional: false } },
  });
  installErrorHandler(http);
  // A chunk plus its metadata; a whole model never has to fit in one message.
  const io: ClientServer = new Server(http.server, {
    maxHttpBufferSize: chunkBytes + 16 * 1024,
    // Clients take theirs from the handshake: both ends wait as long.
    pingTimeout: heartbeatTimeoutMs,
    serveClient: false,
    cors: { origin: corsOrigins, credentials: true },
  });
  return { http, io };
}

/**
 * The server's durable state: by default the SQLite database under its data folder; with a
 * PostgreSQL URL (cluster mode), that database, which every server process shares, model
 * checkpoints included.
 */
async function openState(dataDir: string, secretsKeyFile: string | undefined, databaseUrl: string | undefined) {
  const stores = databaseUrl ? await openPostgresStores(databaseUrl) : sqliteStores(dataDir);
  const { store, audit } = stores;
  return {
    store,
    audit,
    accounts: new Accounts(stores.accounts, audit, stateSeedBox(dataDir, secretsKeyFile)),
    enrollments: new Enrollments(stores.enrollments, store, audit),
    checkpoints: new Checkpoints(stores.checkpoints),
  };
}

/** The embedded default: one SQLite file, and checkpoints as TF.js model folders beside it. */
function sqliteStores(dataDir: string) {
  const db = openDatabase(join(dataDir, 'tributary.db'));
  return {
    store: new SqliteStore(db), audit: new SqliteAudit(db), accounts: new SqliteAccounts(db), enrollments: new SqliteEnrollments(db),
    checkpoints: new FileCheckpointStore(join(dataDir, 'checkpoints')),
  };
}

/** Cookies, CORS, security headers, the rate limiter routes opt into, and the OpenAPI collector. */
async function installHttpBasics(http: FastifyInstance, corsOrigins: string[]): Promise<void> {
  await http.register(fastifyCookie);
  await http.register(fastifyCors, { origin: corsOrigins, credentials: true });
  await http.register(fastifyHelmet, {
    // Cross-origin isolated pages: precise timers for speed probes, SharedArrayBuffer for WASM threads.
    crossOriginEmbedderPolicy: { policy: 'require-corp' },
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        // TF.js's WASM backend compiles WebAssembly; nothing runs eval.
        scriptSrc: ["'self'", "'wasm-unsafe-eval'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:', 'blob:'],
        connectSrc: ["'self'", ...corsOrigins],
        workerSrc: ["'self'", 'blob:'],
      },
    },
  });
  await http.register(fastifyRateLimit, {
    global: false,
    errorResponseBuilder: () => new TributaryError('RATE_LIMITED'),
  });
  await http.register(fastifySwagger, {
    openapi: {
      info: { title: 'Tributary', description: 'Federated learning server API', version: '0.1.0' },
      components: { securitySchemes: { session: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE }, bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });
}

/**
 * The server: REST API, client gateway and /admin namespace on one HTTP server, over the
 * state in `dataDir`. Each part is a plugin or unit of its own; this wires them together.
 */
export async function buildApp(options: AppOptions): Promise<App> {
  const log = options.logger ?? pino({ level: 'info' });
  const chunkBytes = options.chunkBytes ?? 256 * 1024;
  const corsOrigins = options.corsOrigins ?? [];
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  await Promise.all([initServerBackend(), cryptoReady()]);
  const serverKey = loadOrCreateServerKey(options.dataDir);

  const { http, io } = createServers(log, chunkBytes, corsOrigins, options.trustProxy ?? false, options.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS);
  const redis = options.redisUrl ? await connectRedis(options.redisUrl, log) : undefined;
  if (redis) attachStreamsAdapter(io, redis.client);
  const { store, audit, accounts, enrollments, checkpoints } = await openState(options.dataDir, options.secretsKeyFile, options.databaseUrl).catch(async (error: unknown) => {
    await redis?.close();
    throw error;
  });
  await accounts.sealStoredSeeds().catch(async (error: unknown) => {
    await store.close();
    await redis?.close();
    throw error;
  });
  const clients = new ClientRegistry();
  const metrics = createMetrics(clients);
  const unmaskPool = new UnmaskPool();
  const scheduler = new Scheduler(clients);
  const splits = new BuiltinSplits((name) => datasetFiles(name, options.datasetDirs));
  const evaluationSets = new EvaluationSets(join(options.dataDir, 'evaluation-sets'));
  const processId = newProcessId();
  const coordinator = new Coordinator({
    cluster: redis && { redis: redis.client, board: new TaskBoard(redis.client), processId },
    store,
    checkpoints,
    clients,
    events: fanOutRoundEvents(socketRoundEvents(io), metrics.events, auditRoundEvents(audit, log)),
    testSet: heldOutTestSets(splits, evaluationSets),
    chunkBytes,
    signingKey: serverKey.secretKey,
    unmask: (job, maskedSum) => unmaskPool.unmask(job, maskedSum),
    scheduler,
    log,
  });
  attachGateway(io, {
    store,
    coordinator,
    clients,
    enrollments,
    scheduler,
    serverKey: serverKey.publicKey,
    log,
    sessionGraceMs: options.sessionGraceMs,
    messageRate: options.messageRate,
    addressLimits: options.addressLimits,
    addressOf: (peer) => clientAddress(peer, options.trustProxy),
    sessions: redis && new SessionDirectory(redis.client, processId),
  });

  await installHttpBasics(http, corsOrigins);
  const routes = installAccessControl(http, accounts);
  await http.register(adminNamespace, { io, accounts, clients, corsOrigins, trustProxy: options.trustProxy });
  await http.register(apiRoutes, { prefix: '/api', store, accounts, enrollments, audit, coordinator, checkpoints, clients, splits, evaluationSets, serverKey: serverKey.publicKey });
  let closing = false;
  let closed: Promise<void> | undefined;
  await http.register(healthRoutes, { store, redis, metrics: metrics.registry, metricsPublic: options.metricsPublic ?? false, closing: () => closing });
  await http.register(webPages, { root: options.webRoot ?? DEFAULT_WEB_ROOT });
  await http.ready();

  return {
    http, io, store, accounts, enrollments, audit, coordinator, routes,
    close() {
      // Once, however many callers ask (a signal handler and a test, two signals).
      return (closed ??= closeAll());
    },
  };
  async function closeAll() {
    closing = true;
    await coordinator.stopAll();
    io.close();
    await http.close(); // the /admin client feed stops here
    await store.close();
    await redis?.close();
    await unmaskPool.close();
  }
}
