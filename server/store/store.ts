import type { RoundRecord, TaskRecord, TaskSpec, TaskStatus } from '../../shared/task.ts';

/**
 * Durable server state. Async from day one so that a Redis implementation can sit
 * behind the same interface; SQLite is the embedded default.
 */
export interface Store {
  createTask(spec: TaskSpec): Promise<TaskRecord>;
  getTask(id: number): Promise<TaskRecord | undefined>;
  listTasks(): Promise<TaskRecord[]>;
  setTaskStatus(id: number, status: TaskStatus): Promise<void>;
  /** Records a completed round and advances the task in one transaction. */
  completeRound(record: RoundRecord): Promise<void>;
  listRounds(taskId: number): Promise<RoundRecord[]>;
  close(): Promise<void>;
}
