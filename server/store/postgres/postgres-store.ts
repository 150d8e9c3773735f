import type { ParticipantRecord, RoundRecord, TaskRecord, TaskSpec, TaskStatus } from '../../../shared/protocol/task.ts';
import { toParticipant, toRound, toTask, type ParticipantRow, type RoundRow, type TaskRow } from '../rows/tasks.ts';
import { TributaryError } from '../../../shared/errors.ts';
import { outOfOrder, type Store } from '../store.ts';
import type { PostgresDatabase } from './database.ts';

/** Tasks and rounds in PostgreSQL (open.ts opens the database). */
export class PostgresStore implements Store {
  constructor(private readonly db: PostgresDatabase) {}

  async createTask(spec: TaskSpec): Promise<TaskRecord> {
    const row = await this.db.row<TaskRow>('INSERT INTO tasks (spec, status, created_at) VALUES ($1, $2, $3) RETURNING *', [
      JSON.stringify(spec),
      'created',
      new Date().toISOString(),
    ]);
    return toTask(row!);
  }

  async getTask(id: number): Promise<TaskRecord | undefined> {
    const row = await this.db.row<TaskRow>('SELECT * FROM tasks WHERE id = $1', [id]);
    return row && toTask(row);
  }

  async listTasks(): Promise<TaskRecord[]> {
    return (await this.db.rows<TaskRow>('SELECT * FROM tasks ORDER BY id')).map(toTask);
  }

  async setTaskStatus(id: number, status: TaskStatus): Promise<void> {
    await this.db.changes('UPDATE tasks SET status = $1 WHERE id = $2', [status, id]);
  }

  async completeRound(r: RoundRecord, participants: readonly ParticipantRecord[] = [], fence?: number): Promise<void> {
    // One row per client, the last given winning, as SQLite's INSERT OR REPLACE does.
    const people = [...new Map(participants.map((p) => [p.clientId, p])).values()];
    await this.db.transaction(async (tx) => {
      // The task's next round or nothing: two processes that both think they lead record a round once, in order.
      const moved = await tx.changes('UPDATE tasks SET completed_rounds = $1 WHERE id = $2 AND completed_rounds = $3', [r.round, r.taskId, r.round - 1]);
      if (moved === 0) throw outOfOrder(r, (await tx.changes('SELECT 1 FROM tasks WHERE id = $1', [r.taskId])) > 0);
      // A leader records only the round whose checkpoint it wrote: a newer leader may have written over it.
      if (fence !== undefined && (await tx.changes('SELECT 1 FROM checkpoints WHERE task_id = $1 AND round = $2 AND fence = $3', [r.taskId, r.round, fence])) === 0) {
        throw new TributaryError('ROUND_OUT_OF_ORDER', `task ${r.taskId} round ${r.round}: its checkpoint was written by another leader`);
      }
      await tx.changes(
        `INSERT INTO rounds (task_id, round, participants, dropped, late, rejected, samples, staleness, accuracy, loss,
           upload_bytes, upload_bytes_per_param, duration_ms, finished_at, rule, discarded, epsilon, clip_norm, metrics, federated)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
        [
          // accuracy and loss columns predate the metrics JSON, which is what is read back: 0 fills them when unmeasured.
          r.taskId, r.round, r.participants, r.dropped, r.late, r.rejected, r.samples, r.staleness, r.accuracy ?? 0, r.loss ?? 0,
          r.uploadBytes, r.uploadBytesPerParam, r.durationMs, r.finishedAt, r.rule, JSON.stringify(r.discarded), r.epsilon, r.clipNorm,
          JSON.stringify(r.metrics), r.federated === null ? null : JSON.stringify(r.federated),
        ],
      );
      if (people.length > 0) {
        // One statement for the whole round, however many took part.
        await tx.changes(
          `INSERT INTO round_participants (task_id, round, client_id, kind, backend, speed, budget, samples, elapsed_ms, outcome)
           SELECT $1, $2, p.* FROM unnest($3::text[], $4::text[], $5::text[], $6::float8[], $7::int8[], $8::int8[], $9::int8[], $10::text[]) AS p`,
          [
            r.taskId, r.round,
            people.map((p) => p.clientId), people.map((p) => p.kind), people.map((p) => p.backend), people.map((p) => p.speed),
            people.map((p) => p.budget), people.map((p) => p.samples), people.map((p) => p.elapsedMs), people.map((p) => p.outcome),
          ],
        );
      }
    });
  }

  async listRounds(taskId: number): Promise<RoundRecord[]> {
    return (await this.db.rows<RoundRow>('SELECT * FROM rounds WHERE task_id = $1 ORDER BY round', [taskId])).map(toRound);
  }

  async listParticipants(taskId: number, round: number): Promise<ParticipantRecord[]> {
    const rows = await this.db.rows<ParticipantRow>('SELECT * FROM round_participants WHERE task_id = $1 AND round = $2 ORDER BY client_id', [taskId, round]);
    return rows.map(toParticipant);
  }

  /** Ends the pool the stores share, as SqliteStore closes their database. */
  async close(): Promise<void> {
    await this.db.close();
  }
}
