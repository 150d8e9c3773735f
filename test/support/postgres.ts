import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** Debian's PostgreSQL 15 (apt: postgresql-15); PG_BIN points elsewhere. */
const BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** A database, or a schema, made for one test. */
export interface Scratch {
  name: string;
  /** Connects to it: to the database, or with the schema as the search path. */
  url: string;
  /** Drops it, and whatever is still connected to a database. */
  drop(): Promise<void>;
}

export interface TestPostgres {
  /** The server's loopback port. */
  readonly port: number;
  /** A connection URL for a database (the `postgres` database by default). */
  url(database?: string): string;
  /** A fresh, empty database (~100 ms). */
  createDatabase(): Promise<Scratch>;
  /**
   * A fresh, empty schema in the `postgres` database, which connections to its URL see as
   * theirs (search_path): what unqualified CREATE TABLE and SELECT reach. A few ms.
   */
  createSchema(): Promise<Scratch>;
  /** Stops the server (a fast shutdown), keeping its data: the port refuses connections until `resume`. */
  halt(): Promise<void>;
  /** Starts the stopped server again on the same data and port. */
  resume(): Promise<void>;
  /** Stops the server and deletes its folder. */
  stop(): Promise<void>;
}

/** The uid and gid PostgreSQL runs as: itself unless we are root, which PostgreSQL refuses to be. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * A real, throwaway PostgreSQL server for one test file: a fresh cluster in a temporary
 * folder (owned by the `postgres` user when the tests run as root), trust auth, loopback
 * TCP on a free port plus a unix socket in the folder, and fsync off: nothing here needs
 * to survive a power cut. Each test takes a fresh schema (`createSchema`) or database (`createDatabase`).
 */
export async function startPostgres(): Promise<TestPostgres> {
  const user = runAs();
  const dir = mkdtempSync(join(tmpdir(), 'tributary-pg-'));
  const data = join(dir, 'data');
  const sockets = join(dir, 'sockets');
  mkdirSync(sockets);
  if (user) for (const path of [dir, sockets]) chownSync(path, user.uid, user.gid);
  const as = { cwd: dir, ...(user ?? {}) };

  await run(join(BIN, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'], as);
  const port = await freePort();
  const url = (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`;

  let server: ChildProcess | undefined;
  // A test process that dies leaves no server behind.
  const onExit = () => server?.kill('SIGKILL');
  process.once('exit', onExit);

  const launch = async () => {
    const args = ['-D', data, '-p', String(port), '-k', sockets, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'];
    const child = spawn(join(BIN, 'postgres'), args, { ...as, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-4_000);
    });
    server = child;
    await untilAccepting(url(), child, () => log);
  };

  const halt = async () => {
    const child = server;
    server = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGINT'); // fast shutdown: sessions are ended, the data is kept
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };

  let scratches = 0;
  try {
    await launch();
  } catch (error) {
    process.off('exit', onExit);
    await halt();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  // The tests' own statements (CREATE, DROP) go through one small pool, which reconnects after `resume`.
  const admin = new pg.Pool({ connectionString: url(), max: 2 });
  admin.on('error', () => {});
  return {
    port,
    url,
    createDatabase: async () => {
      const name = `db${++scratches}`;
      // template0 holds nothing but the catalogue: the quickest copy.
      await admin.query(`CREATE DATABASE ${name} TEMPLATE template0`);
      return { name, url: url(name), drop: async () => void (await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)) };
    },
    createSchema: async () => {
      const name = `s${++scratches}`;
      await admin.query(`CREATE SCHEMA ${name}`);
      const options = encodeURIComponent(`-c search_path=${name}`);
      return { name, url: `${url()}?options=${options}`, drop: async () => void (await admin.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`)) };
    },
    halt,
    resume: launch,
    stop: async () => {
      process.off('exit', onExit);
      await admin.end().catch(() => {});
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function run(command: string, args: string[], options: { cwd: string; uid?: number; gid?: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${command} exited with ${code}: ${log.trim()}`))));
  });
}

/** Polls until the server answers a query; fails at once if it exits, with its log. */
async function untilAccepting(url: string, child: ChildProcess, log: () => string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`postgres exited while starting: ${log().trim()}`);
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`postgres did not accept connections within ${timeoutMs} ms: ${String(error)}\n${log().trim()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      await client.end().catch(() => {});
    }
  }
}
