import type { Logger } from 'pino';
import type { LabelledSet } from '../../shared/data/dataset.ts';
import { TributaryError } from '../../shared/errors.ts';
import type { ChunkAck, ChunkMeta, RoundAbortedEvent, RoundEnd, RoundStartedEvent, TaskStatusEvent, UploadProgressEvent } from '../../shared/protocol/events.ts';
import type { Unmasker } from '../../shared/secagg/unmask.ts';
import type { ParticipantRecord, RoundRecord, TaskRecord } from '../../shared/protocol/task.ts';
import { AsyncRunner } from './async-runner.ts';
import type { Checkpoints } from './checkpoints.ts';
import type { ClientRegistry } from '../gateway/clients.ts';
import type { Scheduler } from './scheduler.ts';
import type { SecureRound } from '../secagg/secure-round.ts';
import { requireTask, type Store } from '../store/store.ts';
import { SyncRunner } from './sync-runner.ts';

/** Where the round loop reports what happens, for clients in the task and for watchers. */
export interface RoundEvents {
  roundStarted(event: RoundStartedEvent): void;
  uploadProgress(event: UploadProgressEvent): void;
  roundAborted(event: RoundAbortedEvent): void;
  roundComplete(record: RoundRecord, end: RoundEnd, detail: { aggregationMs: number; deadlineMs: number; participants: ParticipantRecord[] }): void;
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
  /** Chooses participants and sizes their work (shared by all tasks: they may share devices). */
  scheduler: Scheduler;
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
  /** How a task being stopped ends: paused (resumable) or stopped. */
  private readonly ending = new Map<number, 'paused' | 'stopped'>();
  /** Status writes of runners that just ended, so `stop` returns the final record. */
  private readonly settled = new Map<number, Promise<void>>();

  constructor(private readonly options: CoordinatorOptions) {}

  /** Starts a created task, or resumes a paused one from its last completed round. */
  async start(taskId: number): Promise<TaskRecord> {
    const task = await requireTask(this.options.store, taskId);
    if (this.runners.has(taskId)) throw new TributaryError('TASK_ALREADY_RUNNING');
    if (task.status === 'stopped') throw new TributaryError('TASK_FINISHED', 'the task was stopped');
    if (task.completedRounds >= task.spec.rounds) throw new TributaryError('TASK_FINISHED');
    const runner: TaskRunner = task.spec.mode === 'async' ? new AsyncRunner(task, this.options) : new SyncRunner(task, this.options);
    this.runners.set(taskId, runner);
    await this.options.store.setTaskStatus(taskId, 'running');
    this.options.events.taskStatus({ taskId, status: 'running' });
    void runner.run().then(
      (status) => this.finished(taskId, status === 'completed' ? 'completed' : (this.ending.get(taskId) ?? 'paused')),
      (error: unknown) => {
        this.options.log.error({ err: error, taskId }, 'task runner failed');
        return this.finished(taskId, 'paused');
      },
    );
    return (await this.options.store.getTask(taskId))!;
  }

  /**
   * Ends the running round (the model keeps its last completed round) and pauses the task,
   * which `start` resumes; or stops it for good. A paused task can be stopped too.
   */
  async stop(taskId: number, outcome: 'paused' | 'stopped' = 'stopped'): Promise<TaskRecord> {
    const task = await requireTask(this.options.store, taskId);
    const runner = this.runners.get(taskId);
    if (runner) {
      this.ending.set(taskId, outcome);
      await runner.stop();
      await this.settled.get(taskId);
    } else if (task.status === 'paused' && outcome === 'stopped') {
      await this.finished(taskId, 'stopped');
    } else {
      throw new TributaryError('TASK_NOT_RUNNING');
    }
    return (await this.options.store.getTask(taskId))!;
  }

  pause(taskId: number): Promise<TaskRecord> {
    return this.stop(taskId, 'paused');
  }

  runner(taskId: number): TaskRunner | undefined {
    return this.runners.get(taskId);
  }

  /** Server shutdown: runners end, and their tasks stay `running` in the store so a restart resumes them. */
  async stopAll(): Promise<void> {
    const running = [...this.runners.keys()];
    for (const id of running) this.ending.set(id, 'paused');
    await Promise.all([...this.runners.values()].map((r) => r.stop()));
    await Promise.all(running.map((id) => this.settled.get(id)));
    await Promise.all(running.map((id) => this.options.store.setTaskStatus(id, 'running')));
  }

  private finished(taskId: number, status: 'completed' | 'paused' | 'stopped'): Promise<void> {
    const done = (async () => {
      this.runners.delete(taskId);
      this.ending.delete(taskId);
      await this.options.store.setTaskStatus(taskId, status);
      this.options.events.taskStatus({ taskId, status });
    })();
    this.settled.set(taskId, done);
    return done;
  }
}
