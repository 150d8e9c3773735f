import type * as tfl from '@tensorflow/tfjs-layers';
import type { Logger } from 'pino';
import { countParameters, weightedMean, type Weights } from '../shared/aggregate.ts';
import type { LabelledSet } from '../shared/dataset.ts';
import { TributaryError } from '../shared/errors.ts';
import { buildModel, readWeights, weightLengths, writeWeights } from '../shared/models.ts';
import { encodeWeights } from '../shared/model-wire.ts';
import type { ChunkAck, ChunkMeta, RoundEnd, RoundStartedEvent, TaskStatusEvent, UploadProgressEvent } from '../shared/protocol.ts';
import { createRng, deriveSeed, shuffleInPlace } from '../shared/random.ts';
import type { RoundRecord, TaskRecord } from '../shared/task.ts';
import { decodeUpdate } from '../shared/update-codec.ts';
import { SEAL_OVERHEAD_BYTES, generateBoxKeyPair, openSealed } from '../shared/crypto.ts';
import { signRoundStart } from '../shared/round-signature.ts';
import type { Checkpoints } from './checkpoints.ts';
import type { ClientRegistry, ClientSession } from './clients.ts';
import { evaluate } from './evaluator.ts';
import { RoundCollection } from './round-collection.ts';
import type { Store } from './store/store.ts';
import { createStrategy } from './strategies/index.ts';

/** Where the round loop reports what happens, for clients in the task and for watchers. */
export interface RoundEvents {
  roundStarted(event: RoundStartedEvent): void;
  uploadProgress(event: UploadProgressEvent): void;
  roundComplete(record: RoundRecord, end: RoundEnd): void;
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
  log: Logger;
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
    const runner = new TaskRunner(task, this.options);
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

/** The round loop of one task: select, configure, collect, aggregate, evaluate, checkpoint. */
export class TaskRunner {
  private stopped = false;
  private collection: RoundCollection | undefined;
  private wake: (() => void) | undefined;
  private finishedRun: Promise<'completed' | 'stopped'> | undefined;
  private readonly model: tfl.LayersModel;
  private readonly lengths: number[];
  private readonly strategy;

  constructor(
    private readonly task: TaskRecord,
    private readonly options: CoordinatorOptions,
  ) {
    this.model = buildModel(task.spec.model, task.spec.seed);
    this.lengths = weightLengths(this.model);
    this.strategy = createStrategy(task.spec.strategy);
  }

  run(): Promise<'completed' | 'stopped'> {
    this.finishedRun ??= this.loop();
    return this.finishedRun;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.collection?.abort();
    this.wake?.();
    await this.finishedRun;
  }

  /** Somebody joined, became ready or left: re-check whether a round can start. */
  clientsChanged(): void {
    this.wake?.();
  }

  acceptChunk(clientId: string, meta: ChunkMeta, data: Uint8Array): ChunkAck {
    const collection = this.collection;
    if (!collection) throw new TributaryError('ROUND_NOT_ACTIVE', 'no round is collecting updates');
    try {
      return collection.acceptChunk(clientId, meta, data);
    } finally {
      this.options.events.uploadProgress({
        taskId: this.task.id,
        round: collection.round,
        received: collection.receivedCount,
        expected: this.task.spec.clientsPerRound,
      });
    }
  }

  clientLeft(clientId: string): void {
    this.collection?.drop(clientId);
    this.wake?.();
  }

  private async loop(): Promise<'completed' | 'stopped'> {
    const { spec, id } = this.task;
    const { checkpoints, store, log } = this.options;
    let version = this.task.completedRounds;
    if (version === 0) await checkpoints.save(id, 0, this.model);
    else writeWeights(this.model, await checkpoints.loadWeights(id, version, this.lengths));
    let global = readWeights(this.model);
    const testSet = await this.options.testSet(spec.testLimit);

    while (version < spec.rounds && !this.stopped) {
      const round = version + 1;
      const participants = await this.selectParticipants(round);
      if (this.stopped) break;
      const started = Date.now();
      const collected = await this.collect(round, version, global, participants);
      if (this.stopped) break;
      if (collected.accepted.length < spec.minUpdates) {
        log.warn({ taskId: id, round, accepted: collected.accepted.length }, 'too few updates; retrying round');
        continue;
      }
      const mean = weightedMean(collected.accepted.map((u) => ({ delta: u.delta, weight: u.samples })));
      global = await this.strategy.step(global, mean, round);
      writeWeights(this.model, global);
      const { accuracy, loss } = await evaluate(this.model, testSet);
      await checkpoints.save(id, round, this.model);
      const params = countParameters(global);
      const uploadBytes = collected.accepted.reduce((n, u) => n + u.wireBytes, 0);
      const record: RoundRecord = {
        taskId: id,
        round,
        participants: collected.accepted.length,
        dropped: collected.dropped.length,
        rejected: collected.rejected.length,
        samples: collected.accepted.reduce((n, u) => n + u.samples, 0),
        accuracy,
        loss,
        uploadBytes,
        uploadBytesPerParam: uploadBytes / collected.accepted.length / params,
        durationMs: Date.now() - started,
        finishedAt: new Date().toISOString(),
      };
      await store.completeRound(record);
      log.info({ taskId: id, round, accuracy, loss, participants: record.participants, durationMs: record.durationMs }, 'round complete');
      version = round;
      this.options.events.roundComplete(record, {
        taskId: id,
        round,
        modelVersion: version,
        accuracy,
        loss,
        participants: record.participants,
      });
    }
    return version >= spec.rounds ? 'completed' : 'stopped';
  }

  /**
   * Waits until enough clients are ready (all of clientsPerRound, or after a deadline's
   * wait at least minUpdates), then draws the round's participants reproducibly.
   */
  private async selectParticipants(round: number): Promise<ClientSession[]> {
    const { spec } = this.task;
    const waitingSince = Date.now();
    for (;;) {
      if (this.stopped) return [];
      const ready = this.options.clients.readyFor(this.task.id);
      const waited = Date.now() - waitingSince;
      if (ready.length >= spec.clientsPerRound || (waited > spec.roundDeadlineMs && ready.length >= spec.minUpdates)) {
        const ordered = ready.sort((a, b) => a.id.localeCompare(b.id));
        shuffleInPlace(ordered, createRng(deriveSeed(spec.seed, 'select', round)));
        return ordered.slice(0, spec.clientsPerRound);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1_000);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  private collect(round: number, version: number, global: Weights, participants: ClientSession[]) {
    const { spec, id } = this.task;
    const deadline = Date.now() + spec.roundDeadlineMs;
    const params = this.lengths.reduce((a, b) => a + b, 0);
    const bySession = new Map(participants.map((p) => [p.id, p]));
    // A fresh aggregator key per round: a payload sealed for one round opens in no other.
    const aggregator = generateBoxKeyPair();
    const collection = new RoundCollection({
      taskId: id,
      round,
      participants: participants.map((p) => p.id),
      deadline,
      // Header room plus the packed values; float32 updates need 4 bytes a parameter.
      maxBytes: SEAL_OVERHEAD_BYTES + 64 + 16 * this.lengths.length + Math.ceil((params * spec.bits) / 8),
      maxChunkBytes: this.options.chunkBytes,
      decode: (bytes) => decodeUpdate(openSealed(bytes, aggregator), this.lengths, spec.bits),
      maxSamples: (clientId) => bySession.get(clientId)?.samples ?? 0,
      wireBytes: (clientId) => bySession.get(clientId)?.wireBytes() ?? 0,
    });
    this.collection = collection;
    let weights: Uint8Array | undefined;
    for (const client of participants) {
      const stale = client.cachedVersion !== version;
      if (stale) weights ??= encodeWeights(global);
      client.sendRoundStart(signRoundStart({
        taskId: id,
        round,
        modelVersion: version,
        deadline,
        bits: spec.bits,
        clipSigma: spec.clipSigma,
        hyper: spec.hyper,
        chunkBytes: this.options.chunkBytes,
        weights: stale ? weights! : null,
        aggregatorKey: aggregator.publicKey,
      }, this.options.signingKey));
      client.cachedVersion = version;
    }
    this.options.events.roundStarted({ taskId: id, round, participants: participants.map((p) => p.id), deadline });
    return collection.done.finally(() => {
      this.collection = undefined;
    });
  }
}
