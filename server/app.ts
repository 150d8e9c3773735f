import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifyCors from '@fastify/cors';
import fastifyHelmet from '@fastify/helmet';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import fastifySwagger from '@fastify/swagger';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino, { type Logger } from 'pino';
import { Server } from 'socket.io';
import type { LabelledSet } from '../shared/data/dataset.ts';
import { loadFashionMnist } from '../shared/data/fashion-mnist.ts';
import { cryptoReady, fingerprint, toBase64 } from '../shared/crypto/sodium.ts';
import { TributaryError } from '../shared/errors.ts';
import { authenticate, installAccessControl, SESSION_COOKIE, type RouteRule } from './auth/access.ts';
import { Accounts } from './auth/accounts.ts';
import { Enrollments } from './auth/enrollment.ts';
import type { AuditLog } from './auth/model.ts';
import { Checkpoints } from './rounds/checkpoints.ts';
import { loadOrCreateServerKey } from './auth/server-key.ts';
import { ClientRegistry } from './gateway/clients.ts';
import { Coordinator } from './rounds/coordinator.ts';
import { DEFAULT_DATA_DIR, idxFolder } from './data/fashion-mnist.ts';
import { attachGateway, socketRoundEvents, type ClientServer } from './gateway/gateway.ts';
import { createMetrics } from './metrics.ts';
import { Scheduler } from './rounds/scheduler.ts';
import { UnmaskPool } from './secagg/unmask-pool.ts';
import { startClientFeed } from './gateway/client-feed.ts';
import { DemoShards } from './data/demo-shards.ts';
import { auditRoutes } from './routes/audit.ts';
import { clientRoutes } from './routes/clients.ts';
import { authRoutes } from './routes/auth.ts';
import { enrollmentRoutes } from './routes/enrollment.ts';
import { installErrorHandler } from './routes/errors.ts';
import { modelRoutes } from './routes/model.ts';
import { taskRoutes } from './routes/tasks.ts';
import { openDatabase } from './store/database.ts';
import { SqliteAccounts } from './store/sqlite-accounts.ts';
import { SqliteAudit } from './store/sqlite-audit.ts';
import { SqliteEnrollments } from './store/sqlite-enrollments.ts';
import { SqliteStore } from './store/sqlite-store.ts';
import type { Store } from './store/store.ts';
import { initServerBackend } from './rounds/tf-backend.ts';

export interface AppOptions {
  /** Where the SQLite file and checkpoints live. */
  dataDir: string;
  /** Folder holding the Fashion-MNIST IDX files (for the held-out test set). */
  fashionMnistDir?: string;
  /** Largest upload chunk a client may send; the socket message limit follows from it. */
  chunkBytes?: number;
  logger?: Logger;
  /** Serve /metrics to any address; by default only loopback may scrape it. */
  metricsPublic?: boolean;
  /** How long a disconnected client keeps its session for a reconnect (default 30 s). */
  sessionGraceMs?: number;
  /** Origins (besides the server's own) whose pages may call the API and connect sockets: web apps embedding the SDK. */
  corsOrigins?: string[];
  /** Per-connection socket message budget (default 50 a second, bursts of 200). */
  messageRate?: { perSecond: number; burst: number };
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

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);
/** The built web app (`npm run build`): pages, the SDK and TF.js's WASM files. */
const webRoot = fileURLToPath(new URL('../dist/web/', import.meta.url));
/** Files other sites' pages load when they embed the SDK. */
const EMBEDDABLE = ['/sdk/', '/assets/', '/tfjs-wasm/'];

export async function buildApp(options: AppOptions): Promise<App> {
  const log = options.logger ?? pino({ level: 'info' });
  const chunkBytes = options.chunkBytes ?? 256 * 1024;
  const corsOrigins = options.corsOrigins ?? [];
  mkdirSync(options.dataDir, { recursive: true });
  await Promise.all([initServerBackend(), cryptoReady()]);
  const serverKey = loadOrCreateServerKey(options.dataDir);

  const http = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: 1024 * 1024,
    // Reject unknown fields instead of silently dropping them (which also breaks unions).
    ajv: { customOptions: { removeAdditional: false } },
  });
  installErrorHandler(http);
  // A chunk plus its metadata; a whole model never has to fit in one message.
  const io: ClientServer = new Server(http.server, {
    maxHttpBufferSize: chunkBytes + 16 * 1024,
    serveClient: false,
    cors: { origin: corsOrigins, credentials: true },
  });

  const db = openDatabase(join(options.dataDir, 'tributary.db'));
  const store = new SqliteStore(db);
  const audit = new SqliteAudit(db);
  const accounts = new Accounts(new SqliteAccounts(db), audit);
  const enrollments = new Enrollments(new SqliteEnrollments(db), store, audit);
  const checkpoints = new Checkpoints(join(options.dataDir, 'checkpoints'));
  const clients = new ClientRegistry();
  const metrics = createMetrics(clients);
  const unmaskPool = new UnmaskPool();
  const scheduler = new Scheduler(clients);
  const socketEvents = socketRoundEvents(io);
  const fashionMnist = idxFolder(options.fashionMnistDir ?? DEFAULT_DATA_DIR);
  const testSets = new Map<number, Promise<LabelledSet>>();
  const system = (action: string, taskId: number, detail: Record<string, unknown>) =>
    void audit.record({ actor: 'system', action, target: `task ${taskId}`, detail, ip: '' });
  const coordinator = new Coordinator({
    store,
    checkpoints,
    clients,
    events: {
      ...socketEvents,
      roundStarted: (event) => {
        socketEvents.roundStarted(event);
        system('round.start', event.taskId, { round: event.round, participants: event.participants.length });
      },
      roundComplete: (record, end, timing) => {
        socketEvents.roundComplete(record, end, timing);
        metrics.events.roundComplete(record, end, timing);
        system('round.complete', record.taskId, { round: record.round, accuracy: record.accuracy });
      },
      roundAborted: (event) => {
        socketEvents.roundAborted(event);
        metrics.events.roundAborted(event);
        system('round.abort', event.taskId, { round: event.round, code: event.error.code });
      },
    },
    testSet: (limit) => {
      if (!testSets.has(limit)) testSets.set(limit, loadFashionMnist(fashionMnist, 't10k', limit));
      return testSets.get(limit)!;
    },
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
    ...(options.sessionGraceMs === undefined ? {} : { sessionGraceMs: options.sessionGraceMs }),
    ...(options.messageRate === undefined ? {} : { messageRate: options.messageRate }),
  });

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
  const routes = installAccessControl(http, accounts);
  const stopClientFeed = startClientFeed(io.of('/admin'), clients);

  // The /admin namespace shows round events: signed-in users (cookie) or API tokens only.
  io.of('/admin').use((socket, next) => {
    const cookies = http.parseCookie(socket.request.headers.cookie ?? '');
    const bearer = typeof socket.handshake.auth.token === 'string' ? socket.handshake.auth.token : undefined;
    authenticate(accounts, { sessionId: cookies[SESSION_COOKIE], bearer }).then(
      (principal) => next(principal ? undefined : Object.assign(new Error('Sign in, or present a valid token'), { data: { code: 'UNAUTHORIZED' } })),
      (error: unknown) => next(error as Error),
    );
  });

  await http.register(fastifySwagger, {
    openapi: {
      info: { title: 'Tributary', description: 'Federated learning server API', version: '0.1.0' },
      components: { securitySchemes: { session: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE }, bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });
  await http.register(
    async (api) => {
      api.get('/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, () => http.swagger());
      api.get('/server-key', {
        config: { access: 'public' },
        schema: { summary: "The server's Ed25519 public key (base64) and its fingerprint, for pinning", tags: ['server'] },
      }, () => ({ publicKey: toBase64(serverKey.publicKey), fingerprint: fingerprint(serverKey.publicKey) }));
      await api.register(authRoutes, { accounts });
      await api.register(taskRoutes, { store, coordinator, audit });
      await api.register(modelRoutes, { store, checkpoints });
      await api.register(enrollmentRoutes, { enrollments });
      await api.register(auditRoutes, { audit });
      await api.register(clientRoutes, { store, clients, shards: new DemoShards(fashionMnist) });
    },
    { prefix: '/api' },
  );
  let closing = false;
  http.get('/healthz', { config: { access: 'public' }, schema: { hide: true } }, () => ({ ok: true }));
  // Ready: accepting work, and the store answers.
  http.get('/readyz', { config: { access: 'public' }, schema: { hide: true } }, async (_request, reply) => {
    if (closing) return reply.code(503).send({ ready: false, reason: 'shutting down' });
    await store.listTasks();
    return { ready: true };
  });
  http.get('/metrics', { config: { access: 'public' }, schema: { hide: true } }, async (request, reply) => {
    if (!options.metricsPublic && !LOOPBACK.has(request.socket.remoteAddress ?? '')) {
      throw new TributaryError('FORBIDDEN', '/metrics answers loopback only (serve --metrics-public to change)');
    }
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  // The web pages are public; what they do goes through the API's rules.
  await http.register(async (pages) => {
    pages.addHook('onRoute', (route) => {
      route.config = { ...route.config, access: 'public' };
    });
    pages.addHook('onSend', async (request, reply) => {
      if (EMBEDDABLE.some((prefix) => request.url.startsWith(prefix))) {
        void reply.header('access-control-allow-origin', '*').header('cross-origin-resource-policy', 'cross-origin');
      }
    });
    if (existsSync(webRoot)) {
      await pages.register(fastifyStatic, { root: webRoot, redirect: true });
    } else {
      pages.get('/', (_request, reply) => reply.type('text/plain').send('The web app is not built: run `npm run build` (npm start does).\n'));
    }
  });
  await http.ready();

  return {
    http,
    io,
    store,
    accounts,
    enrollments,
    audit,
    coordinator,
    routes,
    async close() {
      closing = true;
      stopClientFeed();
      await coordinator.stopAll();
      io.close();
      await http.close();
      await store.close();
      await unmaskPool.close();
    },
  };
}
