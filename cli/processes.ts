import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../bin/tributary.js', import.meta.url));

/** Runs `tributary <args>` as a child process, its output going to a log file. */
export function spawnTributary(args: string[], logFile: string): ChildProcess {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(logFile);
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  return child;
}

/** Args for an edge client of a local run; it keeps its pinned server key and identity in the run's own state folder. */
export function edgeClientArgs(url: string, taskId: number, shard: number, data: string, stateDir: string, extra: string[] = []): string[] {
  return ['client', '--server', url, '--task', String(taskId), '--shard', String(shard), '--data', data,
    '--pin-file', join(stateDir, 'known-servers.json'), '--identity-file', join(stateDir, `client-${shard}-identity.json`), ...extra];
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** Resolves once the server answers /healthz; fails if it exits first. */
export async function waitForHealth(url: string, server: ChildProcess, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (server.exitCode !== null) throw new Error(`server exited with code ${server.exitCode}`);
    const ok = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`server did not become healthy within ${timeoutMs} ms`);
}

/** A REST call; a coded error body becomes the thrown message. */
export async function api<T>(url: string, method: 'GET' | 'POST', body?: unknown): Promise<T> {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await response.json()) as T & { code?: string; message?: string };
  if (!response.ok) throw new Error(`${method} ${url}: ${json.code}: ${json.message}`);
  return json;
}

