import type { Logger } from 'pino';
import type { LabelledSet } from '../shared/dataset.ts';
import { TributaryError } from '../shared/errors.ts';
import type { ChunkAck, ChunkMeta, RoundAbortedEvent, RoundEnd, RoundStartedEvent, TaskStatusEvent, UploadProgressEvent } from '../shared/protocol.ts';
import type { Unmasker } from '../shared/secagg-unmask.ts';
import type { RoundRecord, TaskRecord } from '../shared/task.ts';
import { AsyncRunner } from './async-runner.ts';
import type { Checkpoints } from './checkpoints.ts';
import type { ClientRegistry } from './clients.ts';
import type { SecureRound } from './secure-round.ts';
import type { Store } from './store/store.ts';
import { SyncRunner } from './sync-runner.ts';

/** Where the round loop reports what happens, for clients in the task and for watchers. */
export interface RoundEvents {
  roundStarted(event: RoundStartedEvent): void;
  uploadProgress(event: UploadProgressEvent): void;
  roundAborted(event: RoundAbortedEvent): void;
  roundComplete(record: RoundRecord, end: RoundEnd, timing: { aggregationMs: number }): void;
  taskStatus(event: TaskStatusEvent): void;
}

export interface CoordinatorOptions {
  store: Store;
  checkpoints: Checkpoints;
  clients: ClientRegistry;
  events: RoundEvents;
  testSet: (limit: number) => Promise<LabelledSet>;
  chunkBytes: number;
  /** The server's Ed25519 secret key, which signs every round config. */
  signingKey: Uint8Array;
  /** Secure rounds: removes the masks from the masked sum (server/unmask-pool.ts). */
  unmask: Unmasker;
  log: Logger;
}

/**
 * The one owner of a running task's rounds, as the gateway sees it. Sync tasks run
 * rounds (server/sync-runner.ts); async tasks run FedBuff (server/async-runner.ts).
 */
export interface TaskRunner {
  run(): Promise<'completed' | 'stopped'>;
  stop(): Promise<void>;
  /** Somebody joined, became ready or paused: re-check whether work can be handed out. */
  clientsChanged(): void;
  /** A client's connection dropped; its session may come back within the grace period. */
  clientAway(clientId: string): void;
  /** A client's session ended. */
  clientLeft(clientId: string): void;
  acceptChunk(clientId: string, meta: ChunkMeta, data: Uint8Array): ChunkAck;
  /** The secure protocol of the running round, for a participant's message about round `round`. */
  secureRound(round: number): SecureRound;
}

/** Starts and stops tasks; each running task has exactly one TaskRunner owning its rounds. */
export class Coordinator {
  private readonly runners = new Map<number, TaskRunner>();

  constructor(private readonly options: CoordinatorOptions) {}

  async start(taskId: number): Promise<TaskRecord> {
    const task = await this.options.store.getTask(taskId);
    if (!task) throw new TributaryError('TASK_NOT_FOUND', String(taskId));
    if (this.runners.has(taskId)) throw new TributaryError('TASK_ALREADY_RUNNING');
    if (task.completedRounds >= task.spec.rounds) throw new TributaryError('TASK_FINISHED');
    const runner: TaskRunner = task.spec.mode === 'async' ? new AsyncRunner(task, this.options) : new SyncRunner(task, this.options);
    this.runners.set(taskId, runner);
    await this.options.store.setTaskStatus(taskId, 'running');
    this.options.events.taskStatus({ taskId, status: 'running' });
    void runner.run().then(
      (status) => this.finished(taskId, status),
      (error: unknown) => {
        this.options.log.error({ err: error, taskId }, 'task runner failed');
        return this.finished(taskId, 'stopped');
      },
    );
    return (await this.options.store.getTask(taskId))!;
  }

  async stop(taskId: number): Promise<TaskRecord> {
    const task = await this.options.store.getTask(taskId);
    if (!task) throw new TributaryError('TASK_NOT_FOUND', String(taskId));
    const runner = this.runners.get(taskId);
    if (!runner) throw new TributaryError('TASK_NOT_RUNNING');
    await runner.stop();
    return (await this.options.store.getTask(taskId))!;
  }

  runner(taskId: number): TaskRunner | undefined {
    return this.runners.get(taskId);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.runners.values()].map((r) => r.stop()));
  }

  private async finished(taskId: number, status: 'completed' | 'stopped'): Promise<void> {
    this.runners.delete(taskId);
    await this.options.store.setTaskStatus(taskId, status);
    this.options.events.taskStatus({ taskId, status });
  }
}
