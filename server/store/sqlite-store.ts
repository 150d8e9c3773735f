import Database from 'better-sqlite3';
import { withTaskDefaults, type RoundRecord, type TaskRecord, type TaskSpec, type TaskSpecInput, type TaskStatus } from '../../shared/task.ts';
import type { Store } from './store.ts';

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
  PRIMARY KEY (task_id, round)
);
`;

interface TaskRow {
  id: number;
  spec: string;
  status: TaskStatus;
  completed_rounds: number;
  created_at: string;
}

interface RoundRow {
  task_id: number;
  round: number;
  participants: number;
  dropped: number;
  late: number;
  rejected: number;
  samples: number;
  staleness: number;
  accuracy: number;
  loss: number;
  upload_bytes: number;
  upload_bytes_per_param: number;
  duration_ms: number;
  finished_at: string;
}

function toTask(row: TaskRow): TaskRecord {
  return {
    id: row.id,
    // Specs stored by an older version lack newer fields: those take their defaults.
    spec: withTaskDefaults(JSON.parse(row.spec) as TaskSpecInput),
    status: row.status,
    completedRounds: row.completed_rounds,
    createdAt: row.created_at,
  };
}

function toRound(row: RoundRow): RoundRecord {
  return {
    taskId: row.task_id,
    round: row.round,
    participants: row.participants,
    dropped: row.dropped,
    late: row.late,
    rejected: row.rejected,
    samples: row.samples,
    staleness: row.staleness,
    accuracy: row.accuracy,
    loss: row.loss,
    uploadBytes: row.upload_bytes,
    uploadBytesPerParam: row.upload_bytes_per_param,
    durationMs: row.duration_ms,
    finishedAt: row.finished_at,
  };
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file);
    // WAL + synchronous=NORMAL: a committed round survives a process crash.
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.exec(SCHEMA);
    this.migrate();
  }

  /** Columns added since a database was created, added to it in place. */
  private migrate(): void {
    const columns = new Set((this.db.prepare('PRAGMA table_info(rounds)').all() as Array<{ name: string }>).map((c) => c.name));
    if (!columns.has('late')) this.db.exec('ALTER TABLE rounds ADD COLUMN late INTEGER NOT NULL DEFAULT 0');
    if (!columns.has('staleness')) this.db.exec('ALTER TABLE rounds ADD COLUMN staleness REAL NOT NULL DEFAULT 0');
  }

  async createTask(spec: TaskSpec): Promise<TaskRecord> {
    const info = this.db
      .prepare('INSERT INTO tasks (spec, status, created_at) VALUES (?, ?, ?)')
      .run(JSON.stringify(spec), 'created', new Date().toISOString());
    return (await this.getTask(Number(info.lastInsertRowid)))!;
  }

  async getTask(id: number): Promise<TaskRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM tasks WHERE id = ?').get(id) as TaskRow | undefined;
    return row && toTask(row);
  }

  async listTasks(): Promise<TaskRecord[]> {
    return (this.db.prepare('SELECT * FROM tasks ORDER BY id').all() as TaskRow[]).map(toTask);
  }

  async setTaskStatus(id: number, status: TaskStatus): Promise<void> {
    this.db.prepare('UPDATE tasks SET status = ? WHERE id = ?').run(status, id);
  }

  async completeRound(r: RoundRecord): Promise<void> {
    this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO rounds (task_id, round, participants, dropped, late, rejected, samples, staleness, accuracy, loss,
             upload_bytes, upload_bytes_per_param, duration_ms, finished_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          r.taskId, r.round, r.participants, r.dropped, r.late, r.rejected, r.samples, r.staleness, r.accuracy, r.loss,
          r.uploadBytes, r.uploadBytesPerParam, r.durationMs, r.finishedAt,
        );
      this.db.prepare('UPDATE tasks SET completed_rounds = ? WHERE id = ?').run(r.round, r.taskId);
    })();
  }

  async listRounds(taskId: number): Promise<RoundRecord[]> {
    const rows = this.db.prepare('SELECT * FROM rounds WHERE task_id = ? ORDER BY round').all(taskId) as RoundRow[];
    return rows.map(toRound);
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
