import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * What the local Redis, PostgreSQL and nginx share: finding the program, spawning it so that
 * a dying parent leaves nothing behind, waiting until it answers, and stopping it.
 */

/** A program a local server runs, and the environment variable that points elsewhere. */
export interface Binary {
  name: string;
  path: string;
  env: string;
}

/** Throws one error naming every missing program, and how to install them. */
export function requireBinaries(binaries: readonly Binary[]): void {
  const missing = binaries.filter((b) => !existsSync(b.path));
  if (missing.length === 0) return;
  const list = missing.map((b) => `${b.name} (${b.path})`).join(', ');
  const envs = missing.map((b) => b.env).join(', ');
  throw new Error(`not installed: ${list}. Run \`bash scripts/setup.sh\` in the Tributary folder, or point ${envs} at ${missing.length > 1 ? 'them' : 'it'}`);
}

export interface LocalChild {
  readonly child: ChildProcess;
  /** The last few KiB of its stderr, for errors. */
  stderr(): string;
}

/**
 * Spawns a server with its stderr kept for errors. It gets its own process group, so a
 * Ctrl-C at the terminal reaches only its parent, which stops it in order; if the parent
 * exits without stopping it, it is killed.
 */
export function spawnLocal(command: string, args: readonly string[], options: SpawnOptions = {}): LocalChild {
  const child = spawn(command, args, { ...options, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  child.once('error', (error) => (stderr += `\n${error.message}`));
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  child.once('exit', () => process.off('exit', reap));
  return { child, stderr: () => stderr.trim() };
}

export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Polls `ready` until it says yes; fails at once, with its stderr, if the server exits first. */
export async function waitUntilReady(name: string, server: LocalChild, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (hasExited(server.child)) throw new Error(`${name} exited (${server.child.exitCode ?? server.child.signalCode}) while starting: ${server.stderr()}`);
    if (await ready()) return;
    if (Date.now() > deadline) throw new Error(`${name} did not answer within ${timeoutMs} ms: ${server.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Sends `signal` and waits for the exit, killing the process if it takes longer than `graceMs`. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (hasExited(child)) return;
  child.kill(signal);
  if (await exitsWithin(child, graceMs)) return;
  child.kill('SIGKILL');
  await exitsWithin(child, 60_000);
}

/** Whether the process has exited, or exits within `ms`. */
export function exitsWithin(child: ChildProcess, ms: number): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}
