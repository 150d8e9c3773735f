import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A real, throwaway redis-server for tests: loopback only, on a free port, in its own
 * temp folder, with no persistence (so a restart is a restart from empty, as a crashed
 * Redis without AOF would be).
 */
export interface TestRedis {
  readonly url: string;
  readonly port: number;
  /** Kill the server (an outage); the port and folder are kept for `start()`. */
  stop(): Promise<void>;
  /** Start it again on the same port, empty, and wait until it answers PING. */
  start(): Promise<void>;
  /** `stop()` then `start()`. */
  restart(): Promise<void>;
  /** Stop for good and remove the temp folder. */
  close(): Promise<void>;
}

const binary = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';
const readyWithinMs = 10_000;

export async function startRedis(): Promise<TestRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-redis-'));
  let port = 0;
  let child: ChildProcess | undefined;
  // Another process may take the free port between our probe and redis-server's bind.
  for (let attempt = 0; !child; attempt++) {
    port = await freePort();
    try {
      child = await spawnRedis(port, dir);
    } catch (error) {
      if (attempt >= 2) {
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
  let current: ChildProcess | undefined = child;
  const stop = async () => {
    const running = current;
    current = undefined;
    if (running) await kill(running);
  };
  const start = async () => {
    if (!current) current = await spawnRedis(port, dir);
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
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function spawnRedis(port: number, dir: string): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'];
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // A test run that dies must not leave servers behind.
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  child.once('exit', () => process.off('exit', reap));
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`redis-server on port ${port} exited (${String(code)}) before answering: ${stderr.trim()}`);
  });
  exited.catch(() => {});
  try {
    await Promise.race([answersPing(port), exited]);
  } catch (error) {
    await kill(child);
    throw error;
  }
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

/** Polls with a bare PING until the server answers +PONG. */
async function answersPing(port: number): Promise<void> {
  const deadline = Date.now() + readyWithinMs;
  for (;;) {
    if (await pingOnce(port)) return;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within ${readyWithinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

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

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}
