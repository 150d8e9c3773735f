import type { Pool } from 'pg';
import type { AccountStore, AuditLog, EnrollmentStore } from '../../auth/model.ts';
import type { CheckpointStore } from '../../rounds/checkpoint-store.ts';
import type { Store } from '../store.ts';
import { PostgresDatabase, type PostgresOptions } from './database.ts';
import { PostgresAccounts } from './postgres-accounts.ts';
import { PostgresAudit } from './postgres-audit.ts';
import { PostgresCheckpoints } from './postgres-checkpoints.ts';
import { PostgresEnrollments } from './postgres-enrollments.ts';
import { PostgresStore } from './postgres-store.ts';

export interface PostgresStores {
  store: Store;
  accounts: AccountStore;
  enrollments: EnrollmentStore;
  audit: AuditLog;
  checkpoints: CheckpointStore;
  /** The pool all four share (for health checks and tests). */
  pool: Pool;
  /** Ends the pool; `store.close()` does the same. Closing again is harmless. */
  close(): Promise<void>;
}

/**
 * The durable stores over one PostgreSQL database (`postgres://user:password@host:port/db`),
 * what `serve --database postgres://…` runs on instead of the SQLite file. Creates the
 * tables if the database lacks them. Throws DATABASE_UNAVAILABLE, naming host and port,
 * if the database cannot be reached or refuses the connection.
 */
export async function openPostgresStores(url: string, options?: PostgresOptions): Promise<PostgresStores> {
  const db = await PostgresDatabase.open(url, options);
  return {
    store: new PostgresStore(db),
    accounts: new PostgresAccounts(db),
    enrollments: new PostgresEnrollments(db),
    audit: new PostgresAudit(db),
    checkpoints: new PostgresCheckpoints(db),
    pool: db.pool,
    close: () => db.close(),
  };
}
