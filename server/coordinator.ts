import type * as tfl from '@tensorflow/tfjs-layers';
import type { Logger } from 'pino';
import { countParameters, weightedMean, type Weights } from '../shared/aggregate.ts';
import type { LabelledSet } from '../shared/dataset.ts';
import { TributaryError } from '../shared/errors.ts';
import { buildModel, readWeights, weightLengths, writeWeights } from '../shared/models.ts';
import { encodeWeights } from '../shared/model-wire.ts';
import type { ChunkAck, ChunkMeta, RoundAbortedEvent, RoundEnd, RoundStart, RoundStartedEvent, TaskStatusEvent, UploadProgressEvent } from '../shared/protocol.ts';
import { createRng, deriveSeed, shuffleInPlace } from '../shared/random.ts';
import type { RoundRecord, TaskRecord } from '../shared/task.ts';
import { decodeUpdate } from '../shared/update-codec.ts';
import { SEAL_OVERHEAD_BYTES, concatBytes, generateBoxKeyPair, openSealed, randomBytes, type KeyPair } from '../shared/crypto.ts';
import { decodeRing, ringBits, ringWireBytes, type RingVector } from '../shared/ring.ts';
import { roundContext, secureParameters, type SecureRoundConfig } from '../shared/secagg-protocol.ts';
import { decodeSecureSum, INITIAL_SECURE_CLIP, nextClips, secureInputLength } from '../shared/secure-codec.ts';
import { signRoundStart } from '../shared/round-signature.ts';
import type { Checkpoints } from './checkpoints.ts';
import type { ClientRegistry, ClientSession } from './clients.ts';
import { evaluate } from './evaluator.ts';
import { RoundCollection, type CollectedRound } from './round-collection.ts';
import { SecureRound } from './secure-round.ts';
import type { Unmasker } from '../shared/secagg-unmask.ts';
import type { Store } from './store/store.ts';
import { createStrategy } from './strategies/index.ts';

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

/** What a round gives the model and its record; null when it ended without an update. */
interface RoundOutcome {
  mean: Weights;
  participants: number;
  dropped: number;
  late: number;
  rejected: number;
  samples: number;
  uploadBytes: number;
  /** Time spent turning the collected updates into the mean update (decoding excluded, unmasking included). */
  aggregationMs: number;
}

/** Longest wait for one phase of a secure round after the upload. */
const SECURE_PHASE_MS = 30_000;
/** Pause after an aborted round before selecting again. */
const ABORTED_ROUND_PAUSE_MS = 2_000;
/** Once a federation has run a round, a shrunk one (devices gone) carries on after this wait. */
const SHRUNK_FEDERATION_GRACE_MS = 5_000;

/** The round loop of one task: select, configure, collect, aggregate, evaluate, checkpoint. */
export class TaskRunner {
  private stopped = false;
  private collection: Pick<RoundCollection<unknown>, 'acceptChunk' | 'drop' | 'abort' | 'round' | 'receivedCount'> | undefined;
  private secure: { round: number; protocol: SecureRound } | undefined;
  private wake: (() => void) | undefined;
  private finishedRun: Promise<'completed' | 'stopped'> | undefined;
  private roundsTried = 0;
  private readonly model: tfl.LayersModel;
  private readonly lengths: number[];
  private readonly strategy;
  /** Secure rounds: each tensor's shared quantization range, adapted round by round. */
  private clips: number[];

  constructor(
    private readonly task: TaskRecord,
    private readonly options: CoordinatorOptions,
  ) {
    this.model = buildModel(task.spec.model, task.spec.seed);
    this.lengths = weightLengths(this.model);
    this.strategy = createStrategy(task.spec.strategy);
    this.clips = this.lengths.map(() => Math.fround(INITIAL_SECURE_CLIP));
  }

  run(): Promise<'completed' | 'stopped'> {
    this.finishedRun ??= this.loop();
    return this.finishedRun;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.collection?.abort();
    this.secure?.protocol.abort(new TributaryError('TASK_NOT_RUNNING', 'the task was stopped'));
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
      const ack = collection.acceptChunk(clientId, meta, data);
      if (ack.complete) this.options.clients.get(clientId)?.settleRound(meta.round);
      return ack;
    } finally {
      this.options.events.uploadProgress({
        taskId: this.task.id,
        round: collection.round,
        received: collection.receivedCount,
        expected: this.task.spec.clientsPerRound,
      });
    }
  }

  /** The secure protocol of the running round, for a participant's message about round `round`. */
  secureRound(round: number): SecureRound {
    if (!this.secure || this.secure.round !== round) throw new TributaryError('ROUND_NOT_ACTIVE', `no secure round ${round} is running`);
    return this.secure.protocol;
  }

  /**
   * A client's connection dropped; its session waits for it to come back. A plain round
   * keeps its place (the upload resumes where it stopped); a secure round cannot, since the
   * phases' deferred answers went to the dead connection, so SecAgg's drop-out handling takes over.
   */
  clientAway(clientId: string): void {
    this.secure?.protocol.drop(clientId);
    this.wake?.();
  }

  /** The client's session ended: it is out of the round. */
  clientLeft(clientId: string): void {
    this.collection?.drop(clientId);
    this.secure?.protocol.drop(clientId);
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
      this.roundsTried++;
      let outcome: RoundOutcome | null;
      try {
        outcome = spec.secure
          ? await this.runSecureRound(round, version, global, participants)
          : await this.plainRound(round, version, global, participants);
      } catch (error) {
        if (!(error instanceof TributaryError)) throw error;
        outcome = null;
        if (!this.stopped) {
          log.warn({ taskId: id, round, code: error.code, reason: error.message }, 'round aborted; model unchanged');
          this.options.events.roundAborted({ taskId: id, round, error: error.toBody() });
          await new Promise((resolve) => setTimeout(resolve, ABORTED_ROUND_PAUSE_MS)); // let departures register before retrying
        }
      }
      for (const p of participants) p.settleRound(round);
      if (this.stopped) break;
      if (!outcome) continue;
      const stepStarted = performance.now();
      global = await this.strategy.step(global, outcome.mean, round);
      const aggregationMs = outcome.aggregationMs + performance.now() - stepStarted;
      writeWeights(this.model, global);
      const { accuracy, loss } = await evaluate(this.model, testSet);
      await checkpoints.save(id, round, this.model);
      const params = countParameters(global);
      const record: RoundRecord = {
        taskId: id,
        round,
        participants: outcome.participants,
        dropped: outcome.dropped,
        late: outcome.late,
        rejected: outcome.rejected,
        samples: outcome.samples,
        accuracy,
        loss,
        uploadBytes: outcome.uploadBytes,
        uploadBytesPerParam: outcome.uploadBytes / outcome.participants / params,
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
      }, { aggregationMs });
    }
    return version >= spec.rounds ? 'completed' : 'stopped';
  }

  /** Fewest ready clients a round may start with. */
  private minimumParticipants(): number {
    const { spec } = this.task;
    return spec.secure ? Math.max(spec.minUpdates, 3, spec.threshold) : spec.minUpdates;
  }

  /**
   * Waits until enough clients are ready (all of clientsPerRound; or the minimum, after
   * a round deadline's wait for the first round and a short grace once the federation has
   * run, so devices that vanished do not stall it), then draws participants reproducibly.
   */
  private async selectParticipants(round: number): Promise<ClientSession[]> {
    const { spec } = this.task;
    const waitingSince = Date.now();
    const grace = this.roundsTried > 0 ? SHRUNK_FEDERATION_GRACE_MS : spec.roundDeadlineMs;
    for (;;) {
      if (this.stopped) return [];
      const ready = this.options.clients.readyFor(this.task.id);
      const waited = Date.now() - waitingSince;
      if (ready.length >= spec.clientsPerRound || (waited > grace && ready.length >= this.minimumParticipants())) {
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

  /** Signs and sends the round config, with the global weights to clients whose copy is stale. */
  private announce(
    base: Omit<RoundStart, 'signature' | 'weights' | 'modelVersion'>,
    version: number,
    global: Weights,
    participants: readonly ClientSession[],
  ): void {
    let weights: Uint8Array | undefined;
    for (const client of participants) {
      const stale = client.cachedVersion !== version;
      if (stale) weights ??= encodeWeights(global);
      client.sendRoundStart(signRoundStart({ ...base, modelVersion: version, weights: stale ? weights! : null }, this.options.signingKey));
      client.cachedVersion = version;
    }
    this.options.events.roundStarted({ taskId: this.task.id, round: base.round, participants: participants.map((p) => p.id), deadline: base.deadline });
  }

  private roundBase(round: number, deadline: number, aggregator: KeyPair, secure: SecureRoundConfig | null) {
    const { spec, id } = this.task;
    return {
      taskId: id,
      round,
      deadline,
      bits: spec.bits,
      clipSigma: spec.clipSigma,
      hyper: spec.hyper,
      chunkBytes: this.options.chunkBytes,
      aggregatorKey: aggregator.publicKey,
      secure,
    };
  }

  /** Collects sealed uploads from `uploaders` until each is in, gone, or the deadline passes. */
  private async collectUploads<T>(
    round: number,
    uploaders: readonly ClientSession[],
    deadline: number,
    maxBytes: number,
    decode: (bytes: Uint8Array) => T,
    maxSamples: (client: ClientSession) => number,
  ): Promise<CollectedRound<T>> {
    const byId = new Map(uploaders.map((p) => [p.id, p]));
    const collection = new RoundCollection<T>({
      taskId: this.task.id,
      round,
      participants: uploaders.map((p) => p.id),
      deadline,
      maxBytes,
      maxChunkBytes: this.options.chunkBytes,
      decode,
      maxSamples: (clientId) => {
        const client = byId.get(clientId);
        return client ? maxSamples(client) : 0;
      },
      wireBytes: (clientId) => byId.get(clientId)?.wireBytes() ?? 0,
    });
    this.collection = collection;
    try {
      return await collection.done;
    } finally {
      this.collection = undefined;
    }
  }

  /** A plain round: each update sealed to the aggregator, decoded, averaged by samples. */
  private async plainRound(round: number, version: number, global: Weights, participants: ClientSession[]): Promise<RoundOutcome | null> {
    const { spec } = this.task;
    const deadline = Date.now() + spec.roundDeadlineMs;
    const params = this.lengths.reduce((a, b) => a + b, 0);
    // A fresh aggregator key per round: a payload sealed for one round opens in no other.
    const aggregator = generateBoxKeyPair();
    const collecting = this.collectUploads(
      round,
      participants,
      deadline,
      // Header room plus the packed values; float32 updates need 4 bytes a parameter.
      SEAL_OVERHEAD_BYTES + 64 + 16 * this.lengths.length + Math.ceil((params * spec.bits) / 8),
      (bytes) => decodeUpdate(openSealed(bytes, aggregator), this.lengths, spec.bits),
      (client) => client.samples,
    );
    this.announce(this.roundBase(round, deadline, aggregator, null), version, global, participants);
    const collected = await collecting;
    if (collected.accepted.length < spec.minUpdates) {
      this.options.log.warn({ taskId: this.task.id, round, accepted: collected.accepted.length }, 'too few updates; retrying round');
      return null;
    }
    const started = performance.now();
    const mean = weightedMean(collected.accepted.map((u) => ({ delta: u.value, weight: u.samples })));
    return {
      mean,
      aggregationMs: performance.now() - started,
      participants: collected.accepted.length,
      dropped: collected.dropped.length,
      late: collected.late.length,
      rejected: collected.rejected.length,
      samples: collected.accepted.reduce((n, u) => n + u.samples, 0),
      uploadBytes: collected.accepted.reduce((n, u) => n + u.wireBytes, 0),
    };
  }

  /**
   * A secure round (SecAgg+): the server sees masked vectors only and learns their sum.
   * Clients pre-scale by samples, so the sum divided by the survivors' weight is FedAvg.
   */
  private async runSecureRound(round: number, version: number, global: Weights, participants: ClientSession[]): Promise<RoundOutcome> {
    const { spec, id } = this.task;
    const now = Date.now();
    const deadline = now + spec.roundDeadlineMs;
    const phaseMs = Math.min(SECURE_PHASE_MS, spec.roundDeadlineMs / 4);
    const bits = spec.bits as Exclude<typeof spec.bits, 32>;
    const n = participants.length;
    const { neighbours, threshold } = secureParameters(n, spec.neighbours, spec.threshold);
    const clips = this.clips;
    const config: SecureRoundConfig = {
      participants: participants.map((p) => ({ clientId: p.id, samples: p.samples })),
      identityKeys: concatBytes(...participants.map((p) => p.identityKey)),
      neighbours,
      threshold,
      ringBits: ringBits(bits, n),
      graphSeed: randomBytes(32),
      clips,
      keysDeadline: now + phaseMs,
      sharesDeadline: now + 2 * phaseMs,
    };
    const aggregator = generateBoxKeyPair();
    const inputLength = secureInputLength(this.lengths);
    const w = config.ringBits;
    const protocol = new SecureRound({ config, context: roundContext(id, round, aggregator.publicKey), inputLength, phaseMs, unmask: this.options.unmask });
    // Every byte a participant sends this round counts: keys and shares as well as its upload.
    const startBytes = participants.map((p) => p.wireBytes());
    this.secure = { round, protocol };
    let rejected = 0;
    try {
      this.announce(this.roundBase(round, deadline, aggregator, config), version, global, participants);
      const { sum, survivors, unmaskMs } = await protocol.run(async (sharers) => {
        const collected = await this.collectUploads<RingVector>(
          round,
          sharers.map((i) => participants[i]!),
          deadline,
          SEAL_OVERHEAD_BYTES + ringWireBytes(inputLength, w),
          (bytes) => decodeRing(openSealed(bytes, aggregator), w, inputLength),
          (client) => client.samples,
        );
        rejected = collected.rejected.length;
        return new Map(collected.accepted.map((u) => [protocol.indexFor(u.clientId), u.value]));
      });
      const decodeStarted = performance.now();
      const meanSamples = config.participants.reduce((a, p) => a + p.samples, 0) / n;
      const samples = survivors.reduce((a, u) => a + config.participants[u]!.samples, 0);
      const reading = decodeSecureSum(sum, { bits, clips, lengths: this.lengths, survivors: survivors.length, weight: samples / meanSamples });
      this.clips = nextClips(clips, reading.rmsRatio, spec.clipSigma);
      this.options.log.debug({ taskId: id, round, clips: this.clips, rmsRatio: reading.rmsRatio }, 'secure round unmasked');
      return {
        mean: reading.mean,
        aggregationMs: unmaskMs + performance.now() - decodeStarted,
        participants: survivors.length,
        dropped: n - survivors.length - rejected,
        late: 0,
        rejected,
        samples,
        uploadBytes: survivors.reduce((a, u) => a + participants[u]!.wireBytes() - startBytes[u]!, 0),
      };
    } finally {
      this.secure = undefined;
    }
  }
}
