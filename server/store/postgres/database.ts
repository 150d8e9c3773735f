import { DatabaseError, Pool, types, type CustomTypesConfig, type PoolClient } from 'pg';
import { TributaryError } from '../../../shared/errors.ts';
import { SCHEMA_STATEMENTS, constraintError } from './schema.ts';

/** What the stores run SQL through: the pool, or one transaction's connection. */
export interface Queryable {
  /** Every row the statement returns. */
  rows<T>(text: string, params?: readonly unknown[]): Promise<T[]>;
  /** The first row, or undefined. */
  row<T>(text: string, params?: readonly unknown[]): Promise<T | undefined>;
  /** How many rows the statement changed. */
  changes(text: string, params?: readonly unknown[]): Promise<number>;
}

export interface PostgresOptions {
  /** Connections the pool may hold; 10 by default. */
  maxConnections?: number;
  /** How long to wait for a connection before DATABASE_UNAVAILABLE; 5 s by default. */
  connectTimeoutMs?: number;
}

/**
 * BIGINT columns read back as numbers: every value in them was written from a JS number
 * (ids, counts, millisecond times), so it is a safe integer. Other types keep pg's parsers.
 */
const PARSERS: CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === types.builtins.INT8 && format !== 'binary' ? Number : types.getTypeParser(oid, format ?? 'text')) as CustomTypesConfig['getTypeParser'],
};

/** Socket failures, and SQLSTATEs of a server that is down, starting, stopping or refusing us. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOENT']);
const UNAVAILABLE_STATES = /^(08|28|57P0[123]|53300|3D000)/;
const CONNECTION_MESSAGES = /Connection terminated|connection error|timeout expired|timeout exceeded when trying to connect|not queryable|Client was closed/i;

/** `host:port` of a connection URL, for messages (never the URL itself: it may hold a password). */
export function targetOf(url: string): string {
  try {
    const parsed = new URL(url);
    const host = parsed.searchParams.get('host') ?? (decodeURIComponent(parsed.hostname) || process.env.PGHOST || 'localhost');
    const port = parsed.searchParams.get('port') ?? (parsed.port || process.env.PGPORT || '5432');
    return `${host}:${port}`;
  } catch {
    return 'the configured address';
  }
}

/**
 * One PostgreSQL database behind a pg.Pool. Every failure leaves here coded: a database
 * that cannot be reached as DATABASE_UNAVAILABLE naming its address, a named constraint's
 * violation as its code (schema.ts); anything else as pg threw it.
 */
export class PostgresDatabase implements Queryable {
  private ending: Promise<void> | undefined;

  private constructor(
    readonly pool: Pool,
    /** `host:port`, for messages. */
    readonly target: string,
  ) {}

  /** Connects, creates the schema if the database lacks it, and answers the database. */
  static async open(url: string, options: PostgresOptions = {}): Promise<PostgresDatabase> {
    const pool = new Pool({
      connectionString: url,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
      application_name: 'tributary',
      types: PARSERS,
    });
    // An idle connection that dies (the server restarted) is dropped by the pool, which
    // opens a new one for the next query; without a listener the event would end the process.
    pool.on('error', () => {});
    const db = new PostgresDatabase(pool, targetOf(url));
    try {
      await db.transaction(async (tx) => {
        for (const statement of SCHEMA_STATEMENTS) await tx.changes(statement);
      });
    } catch (error) {
      await db.close();
      throw error;
    }
    return db;
  }

  rows<T>(text: string, params?: readonly unknown[]): Promise<T[]> {
    return this.run(this.pool, text, params).then((r) => r.rows as T[]);
  }

  row<T>(text: string, params?: readonly unknown[]): Promise<T | undefined> {
    return this.rows<T>(text, params).then((rows) => rows[0]);
  }

  changes(text: string, params?: readonly unknown[]): Promise<number> {
    return this.run(this.pool, text, params).then((r) => r.rowCount ?? 0);
  }

  /** Runs `fn` in one transaction on one connection: committed if it resolves, rolled back if it throws. */
  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw this.coded(error);
    }
    // The pool listens to idle connections only: one that dies while checked out must not crash the process.
    const ignore = () => {};
    client.on('error', ignore);
    let broken = false;
    const tx: Queryable = {
      rows: (text, params) => this.run(client, text, params).then((r) => r.rows),
      row: (text, params) => this.run(client, text, params).then((r) => r.rows[0]),
      changes: (text, params) => this.run(client, text, params).then((r) => r.rowCount ?? 0),
    };
    try {
      await this.run(client, 'BEGIN');
      const result = await fn(tx);
      await this.run(client, 'COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw this.coded(error);
    } finally {
      client.off('error', ignore);
      // A connection that cannot even roll back is closed rather than handed to the next caller.
      client.release(broken);
    }
  }

  /** Ends the pool; closing again is harmless. */
  close(): Promise<void> {
    this.ending ??= this.pool.end();
    return this.ending;
  }

  private async run(on: Pool | PoolClient, text: string, params?: readonly unknown[]) {
    try {
      return await on.query(text, params as unknown[] | undefined);
    } catch (error) {
      throw this.coded(error);
    }
  }

  private coded(error: unknown): unknown {
    if (error instanceof TributaryError) return error;
    if (error instanceof DatabaseError && (error.code === '23505' || error.code === '23503')) {
      const coded = constraintError(error.constraint);
      if (coded) return Object.assign(coded, { cause: error });
    }
    // PostgreSQL's text cannot hold U+0000 (SQLite's can): a value with one is refused, not a server fault.
    if (error instanceof DatabaseError && error.code === '22021') return Object.assign(new TributaryError('BAD_REQUEST', 'text holds a NUL character'), { cause: error });
    if (isUnreachable(error)) {
      return Object.assign(new TributaryError('DATABASE_UNAVAILABLE', `PostgreSQL at ${this.target} (${reasonOf(error)})`), { cause: error });
    }
    return error;
  }
}

function isUnreachable(error: unknown): boolean {
  if (error instanceof DatabaseError) return UNAVAILABLE_STATES.test(error.code ?? '');
  if (error instanceof AggregateError) return error.errors.some(isUnreachable); // one per address of a host name
  if (!(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  return (code !== undefined && UNREACHABLE_CODES.has(code)) || CONNECTION_MESSAGES.test(error.message);
}

/** A failure in words; a refused connection to a name with two addresses is an AggregateError with no message of its own. */
function reasonOf(error: unknown): string {
  if (error instanceof AggregateError) return error.errors.map(reasonOf).join('; ');
  if (!(error instanceof Error)) return String(error);
  return error.message || (error as NodeJS.ErrnoException).code || error.name;
}
