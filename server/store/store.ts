import { TributaryError } from '../../shared/errors.ts';
import type { ParticipantRecord, RoundRecord, TaskRecord, TaskSpec, TaskStatus } from '../../shared/protocol/task.ts';

/**
 * Durable server state. Async from day one so that a Redis implementation can sit
 * behind the same interface; SQLite is the embedded default.
 */
export interface Store {
  createTask(spec: TaskSpec): Promise<TaskRecord>;
  getTask(id: number): Promise<TaskRecord | undefined>;
  listTasks(): Promise<TaskRecord[]>;
  setTaskStatus(id: number, status: TaskStatus): Promise<void>;
  /**
   * Records a completed round (and its participants) and advances the task in one
   * transaction; ROUND_OUT_OF_ORDER unless it is the task's next round. `fence`: a cluster
   * leader's token; a store that also holds the checkpoints (PostgreSQL) refuses it with
   * ROUND_OUT_OF_ORDER unless the round's checkpoint was written under that token. One
   * whose checkpoints are elsewhere (SQLite, files) ignores it.
   */
  completeRound(record: RoundRecord, participants?: readonly ParticipantRecord[], fence?: number): Promise<void>;
  listRounds(taskId: number): Promise<RoundRecord[]>;
  listParticipants(taskId: number, round: number): Promise<ParticipantRecord[]>;
  close(): Promise<void>;
}

/** The task, or TASK_NOT_FOUND. */
export async function requireTask(store: Store, id: number): Promise<TaskRecord> {
  const task = await store.getTask(id);
  if (!task) throw new TributaryError('TASK_NOT_FOUND', String(id));
  return task;
}

/** Why a round record did not advance its task: no such task, or not its next round (recorded already by another leader, or skipping one). */
export function outOfOrder(r: RoundRecord, taskExists: boolean): TributaryError {
  return taskExists ? new TributaryError('ROUND_OUT_OF_ORDER', `task ${r.taskId} round ${r.round}`) : new TributaryError('TASK_NOT_FOUND', String(r.taskId));
}
