import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rest } from '../client/rest.ts';
import { TributaryError } from '../shared/errors.ts';

const bin = fileURLToPath(new URL('../bin/tributary.js', import.meta.url));

/** Runs `tributary <args>` as a child process, its output going to a log file (appended to, for a restarted process). */
export function spawnTributary(args: string[], logFile: string, env?: NodeJS.ProcessEnv, appendLog = false): ChildProcess {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
  const log = createWriteStream(logFile, { flags: appendLog ? 'a' : 'w' });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  return child;
}

/** The environment a spawned client reads its enrollment token from: kept out of its argv, which `ps` shows every user. */
export function tokenEnv(token: string): NodeJS.ProcessEnv {
  return { ...process.env, TRIBUTARY_TOKEN: token };
}

/** Args for an edge client of a local run; it keeps its pinned server key and identity in the run's own state folder. */
export function edgeClientArgs(url: string, taskId: number, shard: number, datasetDirs: readonly string[], stateDir: string, extra: string[] = []): string[] {
  return ['client', '--server', url, '--task', String(taskId), '--shard', String(shard), ...datasetDirs.flatMap((d) => ['--dataset-dir', d]),
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

/** A REST call, with an API token if given; an error reply is thrown as a TributaryError whose message names the call. */
export async function api<T>(url: string, method: 'GET' | 'POST', body?: unknown, token?: string): Promise<T> {
  try {
    return await rest<T>(method, url, { body, bearer: token });
  } catch (error) {
    // A run's log should say which call failed; the code stays on the error for callers.
    if (error instanceof TributaryError) error.message = `${method} ${url}: ${error.code}: ${error.message}`;
    throw error;
  }
}


/**
 * An operator API token for a local run, made straight on the state folder with
 * `tributary admin token` (before or while its server runs); a cluster's accounts are in
 * its database, named by TRIBUTARY_DATABASE in `env`.
 */
export function operatorToken(dataDir: string, env?: NodeJS.ProcessEnv): string {
  const result = spawnSync(process.execPath, [bin, 'admin', 'token', '--data-dir', dataDir, '--username', 'demo-operator', '--create', '--role', 'operator', '--name', 'local run', '--json'], { encoding: 'utf8', ...(env ? { env } : {}) });
  if (result.status !== 0) throw new Error(`could not create an operator token: ${result.stderr}`);
  return (JSON.parse(result.stdout) as { token: string }).token;
}

/**
 * An enrollment token for a task (for browsers and edge devices, or GPU nodes), minted over
 * REST by an operator. A local run's clients share it, so it says how many it enrolls
 * (default any number, never expiring) rather than take the server's one-use default.
 */
export async function enrollmentToken(url: string, taskId: number, operator: string, label: string, kind: 'client' | 'gpu' = 'client', limits = { maxUses: 0, expiresInHours: 0 }): Promise<string> {
  return (await api<{ token: string }>(`${url}/api/tasks/${taskId}/enrollment-tokens`, 'POST', { kind, label, ...limits }, operator)).token;
}
