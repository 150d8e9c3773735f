import type Database from 'better-sqlite3';
import type { ParticipantRecord, RoundRecord, TaskRecord, TaskSpec, TaskStatus } from '../../shared/protocol/task.ts';
import { toParticipant, toRound, toTask, type ParticipantRow, type RoundRow, type TaskRow } from './rows/tasks.ts';
import { outOfOrder, type Store } from './store.ts';

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
      // The task's next round or nothing: two processes that both think they lead record a round once, in order.
      const moved = this.db.prepare('UPDATE tasks SET completed_rounds = ? WHERE id = ? AND completed_rounds = ?').run(r.round, r.taskId, r.round - 1);
      if (moved.changes === 0) throw outOfOrder(r, this.db.prepare('SELECT 1 FROM tasks WHERE id = ?').get(r.taskId) !== undefined);
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
    })();
  }

  async listRounds(taskId: number): Promise<RoundRecord[]> {
    const rows = this.db.prepare('SELECT * FROM rounds WHERE task_id = ? ORDER BY round').all(taskId) as RoundRow[];
    return rows.map(toRound);
  }

  async listParticipants(taskId: number, round: number): Promise<ParticipantRecord[]> {
    const rows = this.db.prepare('SELECT * FROM round_participants WHERE task_id = ? AND round = ? ORDER BY client_id').all(taskId, round) as ParticipantRow[];
    return rows.map(toParticipant);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
