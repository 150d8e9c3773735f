/** The tests' PostgreSQL is the product's local one (cli/local-servers/postgres.ts): temporary, trust auth, fsync off. */
export * from '../../cli/local-servers/postgres.ts';
export type { LocalPostgres as TestPostgres } from '../../cli/local-servers/postgres.ts';
