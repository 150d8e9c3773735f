import type { Logger } from 'pino';
import { createClient, type RedisClientType } from 'redis';
import { TributaryError } from '../../shared/errors.ts';
import { redactUrlPassword } from '../log-redaction.ts';

/**
 * The one Redis connection a cluster-mode process opens. Everything else that needs Redis
 * (the leader leases, the socket.io adapter) is handed this client; the adapter duplicates
 * it for its blocking stream reads and its subscriptions, and the duplicates inherit the
 * reconnect strategy.
 */
export type RedisClient = RedisClientType;

export interface RedisConnection {
  readonly client: RedisClient;
  /** Whether the socket is connected and ready now (no round trip). */
  ready(): boolean;
  /** A PING within `timeoutMs`, for /readyz: false instead of throwing. */
  ping(timeoutMs?: number): Promise<boolean>;
  /** Closes the connection; commands still queued are rejected. */
  close(): Promise<void>;
}

export interface ConnectRedisOptions {
  /** How long the first connection may take, retries included, before start-up fails. */
  startTimeoutMs?: number;
}

/** Exponential backoff, 50 ms doubling to at most 2 s, with jitter; never gives up. */
export function reconnectDelay(retries: number): number {
  return Math.min(50 * 2 ** Math.min(retries, 6), 2000) + Math.floor(Math.random() * 100);
}

/**
 * Connects to Redis, or fails with `REDIS_UNAVAILABLE` once `startTimeoutMs` passed without a
 * connection: cluster mode does not start half-coordinated. Once connected, the client
 * reconnects forever (commands issued meanwhile wait in its offline queue), and a
 * connection error is logged, never thrown: node-redis emits 'error' on every failed
 * attempt, and an EventEmitter's unhandled 'error' would end the process.
 */
export async function connectRedis(url: string, log?: Logger, options: ConnectRedisOptions = {}): Promise<RedisConnection> {
  const where = redactUrlPassword(url);
  const client = createClient({ url, socket: { reconnectStrategy: reconnectDelay, connectTimeout: 5000 } });
  let lastError: unknown;
  let outage = false;
  client.on('error', (error: unknown) => {
    lastError = error;
    if (outage) return log?.debug({ err: error }, 'Redis still unreachable');
    outage = true;
    log?.warn({ err: error, redis: where }, 'Redis unreachable; reconnecting');
  });
  client.on('ready', () => {
    if (outage) log?.info({ redis: where }, 'Redis reachable again');
    outage = false;
  });
  await connectWithin(client, options.startTimeoutMs ?? 3000, () => `${where}: ${describe(lastError)}`);
  return {
    client,
    ready: () => client.isReady,
    ping: async (timeoutMs = 1000) => {
      try {
        return (await client.withCommandOptions({ timeout: timeoutMs }).ping()) === 'PONG';
      } catch {
        return false;
      }
    },
    close: async () => {
      if (client.isOpen) client.destroy();
    },
  };
}

async function connectWithin(client: RedisClient, timeoutMs: number, detail: () => string): Promise<void> {
  const connecting = client.connect();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  try {
    const outcome = await Promise.race([connecting, timedOut]);
    if (outcome !== 'timeout') return;
  } catch {
    // A rejected connect: reported below like a timeout.
  } finally {
    clearTimeout(timer);
  }
  connecting.catch(() => {});
  client.destroy();
  throw new TributaryError('REDIS_UNAVAILABLE', detail());
}

function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return describe(error.errors[0]);
  if (error instanceof Error) return (error as NodeJS.ErrnoException).code ?? error.message;
  return 'no answer';
}

/**
 * A command waits this long for a Redis that is away (node-redis queues commands while it
 * reconnects). Not less: on a loaded machine a reply already in the socket waits out our
 * own event loop's stalls, and at 2 s leases and member lookups failed that Redis answered.
 */
const COMMAND_TIMEOUT_MS = 5_000;

/** A Redis reply, or REDIS_UNAVAILABLE after COMMAND_TIMEOUT_MS: a poll that waits out an outage would pile up behind it. */
export async function timed<T>(reply: Promise<T>, timeoutMs = COMMAND_TIMEOUT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TributaryError('REDIS_UNAVAILABLE', `no reply within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([reply, timeout]);
  } finally {
    clearTimeout(timer);
    reply.catch(() => {}); // a reply that comes after the timeout is dropped
  }
}
