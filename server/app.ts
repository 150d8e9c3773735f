import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import fastifyStatic from '@fastify/static';
import fastifySwagger from '@fastify/swagger';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino, { type Logger } from 'pino';
import { Server } from 'socket.io';
import type { LabelledSet } from '../shared/dataset.ts';
import { loadFashionMnist } from '../shared/fashion-mnist.ts';
import { cryptoReady, fingerprint, toBase64 } from '../shared/crypto.ts';
import { TributaryError } from '../shared/errors.ts';
import { Checkpoints } from './checkpoints.ts';
import { loadOrCreateServerKey } from './server-key.ts';
import { ClientRegistry } from './clients.ts';
import { Coordinator } from './coordinator.ts';
import { DEFAULT_DATA_DIR, idxFolder } from './fashion-mnist.ts';
import { attachGateway, socketRoundEvents, type ClientServer } from './gateway.ts';
import { createMetrics } from './metrics.ts';
import { UnmaskPool } from './unmask-pool.ts';
import { installErrorHandler } from './routes/errors.ts';
import { modelRoutes } from './routes/model.ts';
import { taskRoutes } from './routes/tasks.ts';
import { SqliteStore } from './store/sqlite-store.ts';
import type { Store } from './store/store.ts';
import { initServerBackend } from './tf.ts';

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
}

export interface App {
  http: FastifyInstance;
  io: ClientServer;
  store: Store;
  coordinator: Coordinator;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);
const webRoot = fileURLToPath(new URL('../web/', import.meta.url));

export async function buildApp(options: AppOptions): Promise<App> {
  const log = options.logger ?? pino({ level: 'info' });
  const chunkBytes = options.chunkBytes ?? 256 * 1024;
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
  const io: ClientServer = new Server(http.server, { maxHttpBufferSize: chunkBytes + 16 * 1024, serveClient: false });

  const store = new SqliteStore(join(options.dataDir, 'tributary.db'));
  const checkpoints = new Checkpoints(join(options.dataDir, 'checkpoints'));
  const clients = new ClientRegistry();
  const metrics = createMetrics(clients);
  const unmaskPool = new UnmaskPool();
  const socketEvents = socketRoundEvents(io);
  const fashionMnist = idxFolder(options.fashionMnistDir ?? DEFAULT_DATA_DIR);
  const testSets = new Map<number, Promise<LabelledSet>>();
  const coordinator = new Coordinator({
    store,
    checkpoints,
    clients,
    events: {
      ...socketEvents,
      roundComplete: (record, end, timing) => {
        socketEvents.roundComplete(record, end, timing);
        metrics.events.roundComplete(record, end, timing);
      },
      roundAborted: (event) => {
        socketEvents.roundAborted(event);
        metrics.events.roundAborted(event);
      },
    },
    testSet: (limit) => {
      if (!testSets.has(limit)) testSets.set(limit, loadFashionMnist(fashionMnist, 't10k', limit));
      return testSets.get(limit)!;
    },
    chunkBytes,
    signingKey: serverKey.secretKey,
    unmask: (job, maskedSum) => unmaskPool.unmask(job, maskedSum),
    log,
  });
  attachGateway(io, { store, coordinator, clients, serverKey: serverKey.publicKey, log, ...(options.sessionGraceMs === undefined ? {} : { sessionGraceMs: options.sessionGraceMs }) });

  await http.register(fastifySwagger, {
    openapi: {
      info: { title: 'Tributary', description: 'Federated learning server API', version: '0.1.0' },
    },
  });
  await http.register(
    async (api) => {
      api.get('/openapi.json', { schema: { hide: true } }, () => http.swagger());
      api.get('/server-key', {
        schema: { summary: "The server's Ed25519 public key (base64) and its fingerprint, for pinning", tags: ['server'] },
      }, () => ({ publicKey: toBase64(serverKey.publicKey), fingerprint: fingerprint(serverKey.publicKey) }));
      await api.register(taskRoutes, { store, coordinator });
      await api.register(modelRoutes, { store, checkpoints });
    },
    { prefix: '/api' },
  );
  let closing = false;
  http.get('/healthz', { schema: { hide: true } }, () => ({ ok: true }));
  // Ready: accepting work, and the store answers.
  http.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    if (closing) return reply.code(503).send({ ready: false, reason: 'shutting down' });
    await store.listTasks();
    return { ready: true };
  });
  http.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    if (!options.metricsPublic && !LOOPBACK.has(request.socket.remoteAddress ?? '')) {
      throw new TributaryError('FORBIDDEN', '/metrics answers loopback only (serve --metrics-public to change)');
    }
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  await http.register(fastifyStatic, { root: webRoot });
  await http.ready();

  return {
    http,
    io,
    store,
    coordinator,
    async close() {
      closing = true;
      await coordinator.stopAll();
      io.close();
      await http.close();
      await store.close();
      await unmaskPool.close();
    },
  };
}
