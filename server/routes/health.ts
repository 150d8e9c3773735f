import type { FastifyPluginAsync } from 'fastify';
import type { Registry } from 'prom-client';
import { TributaryError } from '../../shared/errors.ts';
import type { Store } from '../store/store.ts';
import type { RedisConnection } from '../cluster/redis.ts';

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

export interface HealthOptions {
  store: Store;
  /** Cluster mode's Redis: not ready while it is unreachable. */
  redis: RedisConnection | undefined;
  metrics: Registry;
  /** Serve /metrics to any address; by default only loopback may scrape it. */
  metricsPublic: boolean;
  /** True once the app has begun to close: load balancers stop sending work. */
  closing: () => boolean;
}

/** What probes and scrapers ask: `/healthz` (up), `/readyz` (taking work), `/metrics` (Prometheus). */
export const healthRoutes: FastifyPluginAsync<HealthOptions> = async (app, { store, redis, metrics, metricsPublic, closing }) => {
  // Public, and left out of the API docs.
  const publicUnlisted = { config: { access: 'public' }, schema: { hide: true } } as const;
  app.get('/healthz', publicUnlisted, () => ({ ok: true }));
  // Ready: accepting work, and the store (and Redis, in cluster mode) answer.
  app.get('/readyz', publicUnlisted, async (_request, reply) => {
    if (closing()) return reply.code(503).send({ ready: false, reason: 'shutting down' });
    if (redis && !(await redis.ping())) return reply.code(503).send({ ready: false, reason: 'Redis is unreachable' });
    try {
      await store.listTasks();
    } catch (error) {
      return reply.code(503).send({ ready: false, reason: `the database does not answer: ${error instanceof Error ? error.message : String(error)}` });
    }
    return { ready: true };
  });
  app.get('/metrics', publicUnlisted, async (request, reply) => {
    if (!metricsPublic && !LOOPBACK.has(request.socket.remoteAddress ?? '')) {
      throw new TributaryError('FORBIDDEN', '/metrics answers loopback only (serve --metrics-public to change)');
    }
    return reply.type(metrics.contentType).send(await metrics.metrics());
  });
};
