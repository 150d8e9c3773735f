import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';

/**
 * The embedded default: one SQLite file holds tasks, rounds, accounts, enrollments and
 * the audit log. WAL with synchronous=NORMAL: a committed transaction survives a crash of
 * the process (kill -9), which is what the server's resume relies on.
 */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS tasks (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  spec TEXT NOT NULL,
  status TEXT NOT NULL,
  completed_rounds INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
  task_id INTEGER NOT NULL REFERENCES tasks(id),
  round INTEGER NOT NULL,
  participants INTEGER NOT NULL,
  dropped INTEGER NOT NULL,
  late INTEGER NOT NULL DEFAULT 0,
  rejected INTEGER NOT NULL,
  samples INTEGER NOT NULL,
  staleness REAL NOT NULL DEFAULT 0,
  accuracy REAL NOT NULL,
  loss REAL NOT NULL,
  upload_bytes INTEGER NOT NULL,
  upload_bytes_per_param REAL NOT NULL,
  duration_ms INTEGER NOT NULL,
  finished_at TEXT NOT NULL,
  rule TEXT NOT NULL DEFAULT 'mean → fedavg',
  discarded TEXT NOT NULL DEFAULT '[]',
  epsilon REAL,
  clip_norm REAL,
  metrics TEXT,
  federated TEXT,
  PRIMARY KEY (task_id, round)
);
CREATE TABLE IF NOT EXISTS round_participants (
  task_id INTEGER NOT NULL,
  round INTEGER NOT NULL,
  client_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  backend TEXT NOT NULL,
  speed REAL NOT NULL,
  budget INTEGER,
  samples INTEGER NOT NULL,
  elapsed_ms INTEGER,
  outcome TEXT NOT NULL,
  PRIMARY KEY (task_id, round, client_id)
);
CREATE TABLE IF NOT EXISTS users (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  username TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  totp_secret TEXT NOT NULL,
  totp_last_step INTEGER NOT NULL DEFAULT 0,
  recovery_hashes TEXT NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
  id_hash TEXT PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id),
  csrf_token TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_tokens (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INTEGER NOT NULL REFERENCES users(id),
  name TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS enrollment_tokens (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id INTEGER NOT NULL REFERENCES tasks(id),
  kind TEXT NOT NULL,
  label TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  created_by TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT,
  revoked_at TEXT,
  uses INTEGER NOT NULL DEFAULT 0,
  max_uses INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS enrollments (
  task_id INTEGER NOT NULL REFERENCES tasks(id),
  identity_key TEXT NOT NULL,
  kind TEXT NOT NULL,
  token_id INTEGER REFERENCES enrollment_tokens(id),
  created_at TEXT NOT NULL,
  revoked_at TEXT,
  PRIMARY KEY (task_id, identity_key)
);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  detail TEXT NOT NULL,
  ip TEXT NOT NULL
);
`;

/** Columns added since a database was created, added to it in place. */
function migrate(db: Database.Database): void {
  const columns = new Set((db.prepare('PRAGMA table_info(rounds)').all() as Array<{ name: string }>).map((c) => c.name));
  if (!columns.has('late')) db.exec('ALTER TABLE rounds ADD COLUMN late INTEGER NOT NULL DEFAULT 0');
  if (!columns.has('staleness')) db.exec('ALTER TABLE rounds ADD COLUMN staleness REAL NOT NULL DEFAULT 0');
  if (!columns.has('rule')) db.exec("ALTER TABLE rounds ADD COLUMN rule TEXT NOT NULL DEFAULT 'mean → fedavg'");
  if (!columns.has('discarded')) db.exec("ALTER TABLE rounds ADD COLUMN discarded TEXT NOT NULL DEFAULT '[]'");
  if (!columns.has('epsilon')) db.exec('ALTER TABLE rounds ADD COLUMN epsilon REAL');
  if (!columns.has('clip_norm')) db.exec('ALTER TABLE rounds ADD COLUMN clip_norm REAL');
  // Rows from before metrics were stored as JSON keep them NULL: accuracy and loss are their scores.
  if (!columns.has('metrics')) db.exec('ALTER TABLE rounds ADD COLUMN metrics TEXT');
  if (!columns.has('federated')) db.exec('ALTER TABLE rounds ADD COLUMN federated TEXT');
}

/**
 * The database holds password hashes and sealed seeds: it and its -wal and -shm files are
 * the owner's alone. SQLite makes -wal and -shm with the database file's mode, so the file
 * is made 0600 before SQLite opens it; files an older version made 0644 are tightened.
 */
function ownerOnly(file: string): void {
  if (file === ':memory:' || file === '') return;
  closeSync(openSync(file, 'a', 0o600));
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    if (existsSync(f)) chmodSync(f, 0o600);
  }
}

export function openDatabase(file: string): Database.Database {
  ownerOnly(file);
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  // Another process (the CLI's `admin` commands) may write while the server runs.
  db.pragma('busy_timeout = 5000');
  db.exec(SCHEMA);
  migrate(db);
  ownerOnly(file); // -wal and -shm exist now
  return db;
}
