import type { Logger } from 'pino';
import type { TestSets } from '../data/test-sets.ts';
import type { ChunkAck, ChunkMeta, RoundAbortedEvent, RoundEnd, RoundStartedEvent, TaskStatusEvent, UploadProgressEvent } from '../../shared/protocol/events.ts';
import type { ParticipantRecord, RoundRecord } from '../../shared/protocol/task.ts';
import type { Unmasker } from '../../shared/secagg/unmask.ts';
import type { ClientRegistry } from '../gateway/clients.ts';
import type { SecureRound } from '../secagg/secure-round.ts';
import type { Store } from '../store/store.ts';
import type { Checkpoints } from './checkpoints.ts';
import type { Scheduler } from './scheduler.ts';

/** The contracts between the coordinator, the runners that own a task's rounds, and whoever watches them. */

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
  /** The server's held-out set for a task, if it has one (server/data/test-sets.ts). */
  testSet: TestSets;
  chunkBytes: number;
  /** The server's Ed25519 secret key, which signs every round config. */
  signingKey: Uint8Array;
  /** Secure rounds: removes the masks from the masked sum (server/secagg/unmask-pool.ts). */
  unmask: Unmasker;
  /** Chooses participants and sizes their work (shared by all tasks: they may share devices). */
  scheduler: Scheduler;
  log: Logger;
}

/**
 * The one owner of a running task's rounds, as the gateway sees it. Sync tasks run
 * rounds (sync-runner.ts); async tasks run FedBuff (async-runner.ts).
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
