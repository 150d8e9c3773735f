import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../processes.ts';
import { requireBinaries, spawnLocal, stopChild, waitUntilReady, type Binary, type LocalChild } from './child.ts';

/** Debian's redis-server (apt: redis-server); REDIS_SERVER points elsewhere. */
export const REDIS_BINARY: Binary = { name: 'redis-server', path: process.env.REDIS_SERVER ?? '/usr/bin/redis-server', env: 'REDIS_SERVER' };

/**
 * A local redis-server: loopback only, on a free port, in its own folder, with no
 * persistence (so a restart is a restart from empty, as a crashed Redis without AOF would be).
 */
export interface LocalRedis {
  readonly url: string;
  readonly port: number;
  /** Kill the server (an outage); the port and folder are kept for `start()`. */
  stop(): Promise<void>;
  /** Start it again on the same port, empty, and wait until it answers PING. */
  start(): Promise<void>;
  /** `stop()` then `start()`. */
  restart(): Promise<void>;
  /** Stall it (SIGSTOP): connections stay open and commands go unanswered until `thaw()`, as on a machine that stopped scheduling it. */
  freeze(): void;
  thaw(): void;
  /** Stop for good, and remove the folder if it was a temporary one. */
  close(): Promise<void>;
}

export interface RedisOptions {
  /** Its folder, made if missing and kept by `close()` (default: a temporary folder, removed). */
  dir?: string;
}

const readyWithinMs = 10_000;

export async function startRedis(options: RedisOptions = {}): Promise<LocalRedis> {
  requireBinaries([REDIS_BINARY]);
  const temporary = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'tributary-redis-'));
  mkdirSync(dir, { recursive: true });
  const removeDir = () => temporary && rmSync(dir, { recursive: true, force: true });
  let port = 0;
  let current: LocalChild | undefined;
  // Another process may take the free port between our probe and redis-server's bind.
  for (let attempt = 0; !current; attempt++) {
    port = await freePort();
    try {
      current = await spawnRedis(port, dir);
    } catch (error) {
      if (attempt >= 2) {
        removeDir();
        throw error;
      }
    }
  }
  const stop = async () => {
    const running = current;
    current = undefined;
    if (running) await stopChild(running.child, 'SIGKILL', 0);
  };
  const start = async () => {
    current ??= await spawnRedis(port, dir);
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop,
    start,
    restart: async () => {
      await stop();
      await start();
    },
    freeze: () => void current?.child.kill('SIGSTOP'),
    thaw: () => void current?.child.kill('SIGCONT'),
    close: async () => {
      await stop();
      removeDir();
    },
  };
}

async function spawnRedis(port: number, dir: string): Promise<LocalChild> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'];
  const redis = spawnLocal(REDIS_BINARY.path, args);
  try {
    await waitUntilReady(`redis-server on port ${port}`, redis, () => pingOnce(port), readyWithinMs);
  } catch (error) {
    await stopChild(redis.child, 'SIGKILL', 0);
    throw error;
  }
  return redis;
}

/** A bare PING: true once the server answers +PONG. */
function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}
