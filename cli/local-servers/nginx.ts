import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../processes.ts';
import { requireBinaries, spawnLocal, stopChild, waitUntilReady, type Binary } from './child.ts';

/** Debian's nginx (apt: nginx); NGINX points elsewhere. */
export const NGINX_BINARY: Binary = { name: 'nginx', path: process.env.NGINX ?? '/usr/sbin/nginx', env: 'NGINX' };
const SHIPPED = fileURLToPath(new URL('../../deploy/nginx.conf', import.meta.url));

export interface LocalNginx {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

export interface NginxOptions {
  /** The loopback port to listen on (default: a free one). */
  port?: number;
  /** Its folder (config, logs, temp files), made if missing and kept by `stop()` (default: a temporary folder, removed). */
  dir?: string;
  /** Connections it may hold, two a proxied client (default: one worker with the shipped config's); more take more workers. */
  connections?: number;
}

/**
 * A real nginx running the project's own deploy/nginx.conf, with only its upstream list,
 * its port and its log and pid files changed: in its own folder, on a loopback port.
 */
export async function startNginx(upstreams: readonly string[], options: NginxOptions = {}): Promise<LocalNginx> {
  requireBinaries([NGINX_BINARY]);
  if (options.port !== undefined) await ensurePortFree(options.port);
  const shipped = shippedConfig();
  const temporary = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'tributary-nginx-'));
  mkdirSync(dir, { recursive: true });
  const removeDir = () => temporary && rmSync(dir, { recursive: true, force: true });
  const port = options.port ?? (await freePort());
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, localConfig(shipped, upstreams, port, dir, options.connections));
  const nginx = spawnLocal(NGINX_BINARY.path, ['-p', dir, '-c', file, '-g', `daemon off; pid ${join(dir, 'nginx.pid')}; error_log ${join(dir, 'error.log')};`]);
  const stop = async () => {
    await stopChild(nginx.child, 'SIGQUIT', 5_000); // SIGQUIT: nginx's graceful stop
    removeDir();
  };
  const url = `http://127.0.0.1:${port}`;
  try {
    // Any HTTP answer means nginx is up (a 502 from a dead upstream included).
    await waitUntilReady(`nginx on port ${port}`, nginx, () => fetch(`${url}/healthz`).then(() => true, () => false), 10_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, port, stop };
}

const UPSTREAM = /upstream tributary \{[^}]*\}/;

function shippedConfig(): string {
  const shipped = readFileSync(SHIPPED, 'utf8');
  if (!UPSTREAM.test(shipped) || !/listen 8000;/.test(shipped)) throw new Error('deploy/nginx.conf no longer has the upstream block or the listen line this launcher rewrites');
  return shipped;
}

/** Connections one nginx worker takes on: under the usual 20,000-descriptor limit, with room for logs and listeners. */
const CONNECTIONS_PER_WORKER = 16_000;

/** deploy/nginx.conf with these upstreams, listening on this loopback port, its logs and temp files in `dir`. */
function localConfig(shipped: string, upstreams: readonly string[], port: number, dir: string, connections?: number): string {
  // A worker holds a descriptor per connection and cannot raise its limit where the machine forbids it: more connections, more workers,
  // the kernel spreading accepts over them (reuseport).
  const workers = connections === undefined ? 1 : Math.max(1, Math.ceil(connections / CONNECTIONS_PER_WORKER));
  const sized = connections === undefined ? shipped
    : shipped.replace(/worker_connections \d+;/, `worker_connections ${Math.min(connections, CONNECTIONS_PER_WORKER)};`);
  return sized
    .replace(UPSTREAM, `upstream tributary {\n${upstreams.map((u) => `    server ${u} max_fails=1 fail_timeout=5s;`).join('\n')}\n    keepalive 32;\n  }`)
    .replace('listen 8000;', `listen 127.0.0.1:${port}${workers > 1 ? ' reuseport' : ''};`)
    .replace('http {', `http {\n  access_log ${join(dir, 'access.log')};\n  client_body_temp_path ${join(dir, 'body')};\n  proxy_temp_path ${join(dir, 'proxy')};`)
    .replace('worker_processes auto;', `worker_processes ${workers};`);
}

/** Fails with a clear error if something already listens on the port nginx is to take. */
export function ensurePortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => reject(error.code === 'EADDRINUSE' ? new Error(`port ${port} is already in use`) : error));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()));
  });
}
