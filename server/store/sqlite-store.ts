import type Database from 'better-sqlite3';
import { LEGACY_PRESETS } from '../../shared/data/builtin.ts';
import { withTaskDefaults, type ParticipantRecord, type RoundRecord, type TaskRecord, type TaskSpec, type TaskSpecInput, type TaskStatus } from '../../shared/protocol/task.ts';
import type { Store } from './store.ts';

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
  rule: string;
  discarded: string;
  epsilon: number | null;
  clip_norm: number | null;
  metrics: string | null;
  federated: string | null;
}

function toTask(row: TaskRow): TaskRecord {
  return {
    id: row.id,
    // Specs stored by an older version lack newer fields: those take their defaults.
    spec: withTaskDefaults(upgradeSpec(JSON.parse(row.spec) as Record<string, unknown>)),
    status: row.status,
    completedRounds: row.completed_rounds,
    createdAt: row.created_at,
  };
}

/** A spec stored before models were described by architecture names a preset: the same layers, the same weights. */
function upgradeSpec(stored: Record<string, unknown>): TaskSpecInput {
  const model = typeof stored.model === 'string' ? LEGACY_PRESETS[stored.model] : stored.model;
  return { ...stored, model } as TaskSpecInput;
}

function toRound(row: RoundRow): RoundRecord {
  const metrics = row.metrics === null ? { accuracy: row.accuracy, loss: row.loss } : (JSON.parse(row.metrics) as Record<string, number>);
  return {
    taskId: row.task_id,
    round: row.round,
    participants: row.participants,
    dropped: row.dropped,
    late: row.late,
    rejected: row.rejected,
    samples: row.samples,
    staleness: row.staleness,
    accuracy: metrics.accuracy ?? null,
    loss: metrics.loss ?? null,
    metrics,
    federated: row.federated === null ? null : (JSON.parse(row.federated) as RoundRecord['federated']),
    uploadBytes: row.upload_bytes,
    uploadBytesPerParam: row.upload_bytes_per_param,
    durationMs: row.duration_ms,
    finishedAt: row.finished_at,
    rule: row.rule,
    discarded: JSON.parse(row.discarded) as string[],
    epsilon: row.epsilon,
    clipNorm: row.clip_norm,
  };
}

/** Tasks and rounds in SQLite (server/store/database.ts opens the file). */
export class SqliteStore implements Store {
  constructor(private readonly db: Database.Database) {}

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

  async completeRound(r: RoundRecord, participants: readonly ParticipantRecord[] = []): Promise<void> {
    this.db.transaction(() => {
      const insert = this.db.prepare(
        `INSERT OR REPLACE INTO round_participants (task_id, round, client_id, kind, backend, speed, budget, samples, elapsed_ms, outcome)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      for (const p of participants) insert.run(r.taskId, r.round, p.clientId, p.kind, p.backend, p.speed, p.budget, p.samples, p.elapsedMs, p.outcome);
      this.db
        .prepare(
          `INSERT INTO rounds (task_id, round, participants, dropped, late, rejected, samples, staleness, accuracy, loss,
             upload_bytes, upload_bytes_per_param, duration_ms, finished_at, rule, discarded, epsilon, clip_norm, metrics, federated)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          // accuracy and loss columns predate the metrics JSON, which is what is read back: 0 fills them when unmeasured.
          r.taskId, r.round, r.participants, r.dropped, r.late, r.rejected, r.samples, r.staleness, r.accuracy ?? 0, r.loss ?? 0,
          r.uploadBytes, r.uploadBytesPerParam, r.durationMs, r.finishedAt, r.rule, JSON.stringify(r.discarded), r.epsilon, r.clipNorm,
          JSON.stringify(r.metrics), r.federated === null ? null : JSON.stringify(r.federated),
        );
      this.db.prepare('UPDATE tasks SET completed_rounds = ? WHERE id = ?').run(r.round, r.taskId);
    })();
  }

  async listRounds(taskId: number): Promise<RoundRecord[]> {
    const rows = this.db.prepare('SELECT * FROM rounds WHERE task_id = ? ORDER BY round').all(taskId) as RoundRow[];
    return rows.map(toRound);
  }

  async listParticipants(taskId: number, round: number): Promise<ParticipantRecord[]> {
    const rows = this.db.prepare('SELECT * FROM round_participants WHERE task_id = ? AND round = ? ORDER BY client_id').all(taskId, round) as Array<{
      client_id: string; kind: string; backend: string; speed: number; budget: number | null; samples: number; elapsed_ms: number | null; outcome: ParticipantRecord['outcome'];
    }>;
    return rows.map((r) => ({ clientId: r.client_id, kind: r.kind, backend: r.backend, speed: r.speed, budget: r.budget, samples: r.samples, elapsedMs: r.elapsed_ms, outcome: r.outcome }));
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
