import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from '../processes.ts';
import { requireBinaries, spawnLocal, stopChild, waitUntilReady, type Binary, type LocalChild } from './child.ts';

/** Debian's PostgreSQL 15 (apt: postgresql-15); PG_BIN points elsewhere. */
const BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';
export const POSTGRES_BINARY: Binary = { name: 'PostgreSQL 15', path: join(BIN, 'postgres'), env: 'PG_BIN' };

/** A database, or a schema, made for one test. */
export interface Scratch {
  name: string;
  /** Connects to it: to the database, or with the schema as the search path. */
  url: string;
  /** Drops it, and whatever is still connected to a database. */
  drop(): Promise<void>;
}

export interface LocalPostgres {
  /** The server's loopback port. */
  readonly port: number;
  /** A connection URL for a database (the `postgres` database by default), with the password if there is one. */
  url(database?: string): string;
  /** The database of that name, made if missing; returns its URL. */
  ensureDatabase(name: string): Promise<string>;
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
  /** Stops the server, and deletes its folder if it was a temporary one. */
  stop(): Promise<void>;
}

export interface PostgresOptions {
  /**
   * A folder whose cluster is kept between runs: made (initdb) if missing, reused otherwise,
   * and written durably. Default: a temporary folder with fsync off, deleted by `stop()`.
   */
  dir?: string;
  /**
   * trust (default): any local user connects as `postgres`, as throwaway test servers do.
   * password: connections need a random password, made with the cluster and kept in `<dir>/password`.
   */
  auth?: 'trust' | 'password';
}

/** The uid and gid PostgreSQL runs as: itself unless we are root, which PostgreSQL refuses to be. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/**
 * A real PostgreSQL server: a cluster in its own folder (owned by the `postgres` user when
 * we run as root), loopback TCP on a free port plus a unix socket in the folder. A test file
 * takes a throwaway one and each test a fresh schema (`createSchema`) or database
 * (`createDatabase`); `tributary cluster` keeps one in its data folder.
 */
export async function startPostgres(options: PostgresOptions = {}): Promise<LocalPostgres> {
  requireBinaries([POSTGRES_BINARY]);
  const user = runAs();
  const temporary = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'tributary-pg-'));
  const data = join(dir, 'data');
  const sockets = join(dir, 'sockets');
  // Its parents keep their modes: as root, the postgres user must be able to reach the folder.
  for (const path of [dir, sockets]) {
    mkdirSync(path, { recursive: true });
    chmodSync(path, 0o700);
    if (user) chownSync(path, user.uid, user.gid);
  }
  const as = { cwd: dir, ...(user ?? {}) };
  const removeDir = () => temporary && rmSync(dir, { recursive: true, force: true });

  const passwordFile = join(dir, 'password');
  try {
    if (!existsSync(join(data, 'PG_VERSION'))) await initdb(data, options.auth === 'password' ? passwordFile : undefined, temporary, as);
  } catch (error) {
    removeDir();
    throw error;
  }
  const password = existsSync(passwordFile) ? readFileSync(passwordFile, 'utf8').trim() : undefined;
  const port = await freePort();
  const login = password ? `postgres:${encodeURIComponent(password)}` : 'postgres';
  const url = (database = 'postgres') => `postgres://${login}@127.0.0.1:${port}/${database}`;

  let server: LocalChild | undefined;
  const launch = async () => {
    // Nothing in a temporary cluster needs to survive a power cut.
    const fast = temporary ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : [];
    const args = ['-D', data, '-p', String(port), '-k', sockets, '-c', 'listen_addresses=127.0.0.1', ...fast];
    server = spawnLocal(join(BIN, 'postgres'), args, as);
    await waitUntilReady('postgres', server, () => accepts(url()), 20_000);
  };
  const halt = async () => {
    const running = server;
    server = undefined;
    if (running) await stopChild(running.child, 'SIGINT', 10_000); // fast shutdown: sessions are ended, the data is kept
  };

  try {
    await launch();
  } catch (error) {
    await halt();
    removeDir();
    throw error;
  }
  let scratches = 0;
  // Our own statements (CREATE, DROP) go through one small pool, which reconnects after `resume`.
  const admin = new pg.Pool({ connectionString: url(), max: 2 });
  admin.on('error', () => {});
  return {
    port,
    url,
    ensureDatabase: async (name) => {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain database name: ${name}`);
      const found = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      if (found.rowCount === 0) await admin.query(`CREATE DATABASE ${name}`);
      return url(name);
    },
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
      await admin.end().catch(() => {});
      await halt();
      removeDir();
    },
  };
}

/** A new cluster in `data`; with a password file, every connection must give the password written there. */
async function initdb(data: string, passwordFile: string | undefined, temporary: boolean, as: { cwd: string; uid?: number; gid?: number }): Promise<void> {
  const auth = ['-A', 'trust'];
  if (passwordFile) {
    writeFileSync(passwordFile, `${randomBytes(18).toString('base64url')}\n`, { mode: 0o600 });
    if (as.uid !== undefined) chownSync(passwordFile, as.uid, as.gid!);
    auth.splice(0, 2, '-A', 'scram-sha-256', `--pwfile=${passwordFile}`);
  }
  const args = ['-D', data, '-U', 'postgres', ...auth, '-E', 'UTF8', '--locale=C', '--no-instructions', ...(temporary ? ['--no-sync'] : [])];
  try {
    await run(join(BIN, 'initdb'), args, as);
  } catch (error) {
    if (passwordFile) rmSync(passwordFile, { force: true });
    const hint = as.uid !== undefined ? ` (as root, every folder above ${as.cwd} must be searchable by the postgres user)` : '';
    throw new Error(`${(error as Error).message}${hint}`);
  }
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

/** True once the server answers a query. */
async function accepts(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}
