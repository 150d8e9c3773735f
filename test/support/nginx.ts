import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './redis.ts';

/** Debian's nginx (apt: nginx); NGINX points elsewhere. */
const BIN = process.env.NGINX ?? '/usr/sbin/nginx';
const SHIPPED = fileURLToPath(new URL('../../deploy/nginx.conf', import.meta.url));

export interface TestNginx {
  url: string;
  stop(): Promise<void>;
}

/**
 * A real nginx running the project's own deploy/nginx.conf, with only its upstream list,
 * its port and its log and pid files changed: in a temp folder, on a free loopback port.
 */
export async function startNginx(upstreams: readonly string[]): Promise<TestNginx> {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-nginx-'));
  const port = await freePort();
  const shipped = readFileSync(SHIPPED, 'utf8');
  const upstream = /upstream tributary \{[^}]*\}/;
  if (!upstream.test(shipped) || !/listen 8000;/.test(shipped)) throw new Error('deploy/nginx.conf no longer has the upstream block or the listen line this harness rewrites');
  const config = shipped
    .replace(upstream, `upstream tributary {\n${upstreams.map((u) => `    server ${u} max_fails=1 fail_timeout=5s;`).join('\n')}\n    keepalive 32;\n  }`)
    .replace('listen 8000;', `listen 127.0.0.1:${port};`)
    .replace('http {', `http {\n  access_log ${join(dir, 'access.log')};\n  client_body_temp_path ${join(dir, 'body')};\n  proxy_temp_path ${join(dir, 'proxy')};`)
    .replace('worker_processes auto;', 'worker_processes 1;');
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, config);
  const nginx = spawn(BIN, ['-p', dir, '-c', file, '-g', `daemon off; pid ${join(dir, 'nginx.pid')}; error_log ${join(dir, 'error.log')};`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  nginx.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitUntilListening(nginx, port, () => stderr);
  return {
    url,
    async stop() {
      await stopProcess(nginx);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitUntilListening(nginx: ChildProcess, port: number, stderr: () => string): Promise<void> {
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    if (nginx.exitCode !== null) throw new Error(`nginx exited: ${stderr()}`);
    // Any HTTP answer means nginx is up (a 502 from a dead upstream included).
    if (await fetch(`http://127.0.0.1:${port}/healthz`).then(() => true, () => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not listen on ${port} within 10 s: ${stderr()}`);
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGQUIT'); // nginx's graceful stop
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
