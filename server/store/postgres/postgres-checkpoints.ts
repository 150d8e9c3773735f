import type { CheckpointFiles, CheckpointStore } from '../../rounds/checkpoint-store.ts';
import type { PostgresDatabase } from './database.ts';

/**
 * Checkpoints in PostgreSQL, for server processes on any machine. A leader's write carries
 * its fencing token: it is refused once the round is recorded or a leader with a higher
 * token wrote the round, and PostgresStore records a fenced round only if its checkpoint
 * carries the recorder's token, so a deposed leader can neither overwrite a recorded
 * round's model nor record a round over a newer leader's checkpoint.
 */
export class PostgresCheckpoints implements CheckpointStore {
  constructor(private readonly db: PostgresDatabase) {}

  async put(taskId: number, round: number, files: CheckpointFiles, fence?: number): Promise<boolean> {
    const names = Object.keys(files);
    return this.db.transaction(async (tx) => {
      // Locks the task's row, as recording a round does: a fenced write and a record take turns.
      const task = await tx.row('SELECT completed_rounds FROM tasks WHERE id = $1 FOR UPDATE', [taskId]) as { completed_rounds: number } | undefined;
      if (!task) return false;
      const existing = await tx.row('SELECT fence FROM checkpoints WHERE task_id = $1 AND round = $2', [taskId, round]) as { fence: number | null } | undefined;
      if (fence !== undefined && (task.completed_rounds >= round || (existing?.fence ?? -1) > fence)) return false;
      await tx.changes('DELETE FROM checkpoints WHERE task_id = $1 AND round = $2', [taskId, round]);
      await tx.changes('INSERT INTO checkpoints (task_id, round, fence) VALUES ($1, $2, $3)', [taskId, round, fence ?? null]);
      await tx.changes(
        'INSERT INTO checkpoint_files (task_id, round, name, data) SELECT $1, $2, f.* FROM unnest($3::text[], $4::bytea[]) AS f',
        [taskId, round, names, names.map((n) => bufferOf(files[n]!))],
      );
      return true;
    });
  }

  async get(taskId: number, round: number, name: string): Promise<Uint8Array | undefined> {
    const row = await this.db.row<{ data: Buffer }>('SELECT data FROM checkpoint_files WHERE task_id = $1 AND round = $2 AND name = $3', [taskId, round, name]);
    return row && new Uint8Array(row.data);
  }

  async has(taskId: number, round: number): Promise<boolean> {
    return (await this.db.changes('SELECT 1 FROM checkpoints WHERE task_id = $1 AND round = $2', [taskId, round])) > 0;
  }

  async putTaskFile(taskId: number, name: string, bytes: Uint8Array): Promise<void> {
    await this.db.changes(
      'INSERT INTO task_files (task_id, name, data) VALUES ($1, $2, $3) ON CONFLICT (task_id, name) DO UPDATE SET data = EXCLUDED.data',
      [taskId, name, bufferOf(bytes)],
    );
  }

  async getTaskFile(taskId: number, name: string): Promise<Uint8Array | undefined> {
    const row = await this.db.row<{ data: Buffer }>('SELECT data FROM task_files WHERE task_id = $1 AND name = $2', [taskId, name]);
    return row && new Uint8Array(row.data);
  }
}

const bufferOf = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
