import { discountForStaleness } from '../../shared/ml/aggregate.ts';
import { generateBoxKeyPair, openSealed } from '../../shared/crypto/sodium.ts';
import { TributaryError } from '../../shared/errors.ts';
import type { ChunkAck, ChunkMeta } from '../../shared/protocol/events.ts';
import { createRng, deriveSeed, shuffleInPlace } from '../../shared/random.ts';
import { bufferSizeOf, type TaskRecord, type UpdateBits } from '../../shared/protocol/task.ts';
import type { ClientUpdate, UpdateFold } from '../strategies/strategy.ts';
import { decodeUpdate } from '../../shared/codec/update-codec.ts';
import type { ClientSession } from '../gateway/clients.ts';
import type { CoordinatorOptions, TaskRunner } from './runner.ts';
import { collectUploads, plainUpdateMaxBytes, roundBase, sendRoundStarts } from './dispatch.ts';
import type { Contribution, GlobalModel } from './global-model.ts';
import type { RoundCollection } from './round-collection.ts';
import type { SecureRound } from '../secagg/secure-round.ts';
import { Waker } from './waker.ts';

/** One client's piece of work: trained from model version `from`, collected until its deadline. */
interface Dispatch {
  client: ClientSession;
  round: number;
  collection: RoundCollection<{ staleness: number }>;
}

/** What happened to handed-out work since the last server step. */
interface StepTally {
  startedAt: number;
  dropped: number;
  rejected: number;
  /** Updates more than maxStaleness versions behind, discarded. */
  tooStale: number;
}

const newTally = (): StepTally => ({ startedAt: Date.now(), dropped: 0, rejected: 0, tooStale: 0 });

/**
 * An async task: FedBuff (Nguyen et al. 2022). Up to clientsPerRound clients train at once,
 * each on the model version current when it was handed work; every bufferSize updates
 * that arrive make one server step (a "round" in the records), stale ones weighted by
 * 1/√(1 + staleness). Nobody waits for the slowest device. Updates are sealed to a fresh
 * aggregator key per dispatch, as in sync rounds; secure aggregation needs sync rounds.
 */
export class AsyncRunner implements TaskRunner {
  private stopped = false;
  private readonly inFlight = new Map<string, Dispatch>();
  /** The next server step's updates, folded (or, for rules without a fold, held) as they arrive. */
  private pending: PendingStep;
  private tally = newTally();
  private dispatches = 0;
  private readonly waker = new Waker();
  private finishedRun: Promise<'completed' | 'stopped'> | undefined;

  constructor(
    private readonly task: TaskRecord,
    private readonly global: GlobalModel,
    private readonly options: CoordinatorOptions,
  ) {
    this.pending = new PendingStep(global, global.version);
  }

  run(): Promise<'completed' | 'stopped'> {
    this.finishedRun ??= this.loop();
    return this.finishedRun;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.waker.wake();
    await this.finishedRun;
  }

  clientsChanged(): void {
    this.waker.wake();
  }

  acceptChunk(clientId: string, meta: ChunkMeta, data: Uint8Array): ChunkAck {
    const dispatch = this.inFlight.get(clientId);
    if (!dispatch) throw new TributaryError('ROUND_NOT_ACTIVE', 'no work handed to this client is open');
    const ack = dispatch.collection.acceptChunk(clientId, meta, data);
    dispatch.client.noteUpload(dispatch.round, ack.complete);
    if (ack.complete) dispatch.client.settleRound(dispatch.round);
    return ack;
  }

  secureRound(): SecureRound {
    throw new TributaryError('ROUND_NOT_ACTIVE', 'async tasks run no secure rounds');
  }

  /** Its work stays open: the upload resumes if it comes back before the deadline. */
  clientAway(): void {
    this.waker.wake();
  }

  clientLeft(clientId: string): void {
    this.inFlight.get(clientId)?.collection.drop(clientId);
  }

  private async loop(): Promise<'completed' | 'stopped'> {
    const { spec } = this.task;
    const { global } = this;
    const k = bufferSizeOf(spec);
    this.tally = newTally();
    while (!global.finished && !this.stopped) {
      if (this.pending.count >= k) {
        // Updates that arrive while this step is applied belong to the next, one version on.
        const step = this.pending;
        this.pending = new PendingStep(global, step.appliesTo + 1);
        await global.advance(this.contribution(step));
        continue;
      }
      this.handOutWork(global);
      await this.waker.sleep(1_000);
    }
    for (const dispatch of this.inFlight.values()) dispatch.collection.abort();
    if (global.budgetSpent) this.options.log.info({ taskId: this.task.id, round: global.version }, 'privacy budget spent: the task stops before exceeding it');
    return global.finished ? 'completed' : 'stopped';
  }

  /** A full pending step as the server step's contribution, with what happened to handed-out work since the last. */
  private contribution(step: PendingStep): Contribution {
    const started = performance.now();
    const tally = this.tally;
    this.tally = newTally();
    const { applied } = step;
    return {
      input: step.input(),
      aggregationMs: performance.now() - started,
      participants: applied.length,
      dropped: tally.dropped,
      late: applied.filter((u) => u.staleness > 0).length + tally.tooStale,
      rejected: tally.rejected,
      samples: applied.reduce((a, u) => a + u.samples, 0),
      uploadBytes: applied.reduce((a, u) => a + u.wireBytes, 0),
      staleness: applied.reduce((a, u) => a + u.staleness, 0) / applied.length,
      startedAt: tally.startedAt,
    };
  }

  /** Hands the current model to idle ready clients, up to clientsPerRound training at once. */
  private handOutWork(global: GlobalModel): void {
    const { spec, id } = this.task;
    const free = spec.clientsPerRound - this.inFlight.size;
    const idle = this.options.clients.readyFor(id).filter((c) => !this.inFlight.has(c.id));
    if (free <= 0 || idle.length === 0) return;
    const ordered = idle.sort((a, b) => a.id.localeCompare(b.id));
    shuffleInPlace(ordered, createRng(deriveSeed(spec.seed, 'dispatch', this.dispatches++)));
    const chosen = ordered.slice(0, free);
    const deadline = Date.now() + spec.roundDeadlineMs;
    for (const client of chosen) this.dispatch(client, global, deadline);
    this.options.events.roundStarted({ taskId: id, round: global.version + 1, participants: chosen.map((c) => c.id), deadline });
  }

  private dispatch(client: ClientSession, global: GlobalModel, deadline: number): void {
    const { spec, id } = this.task;
    const round = global.version + 1;
    const from = global.version;
    const aggregator = generateBoxKeyPair();
    let tooStale = false;
    let joined: PendingStep | undefined;
    const collection = collectUploads<{ staleness: number }>({
      taskId: id,
      round,
      aggregatorKey: aggregator.publicKey,
      uploaders: [client],
      deadline,
      maxBytes: plainUpdateMaxBytes(global.lengths, spec.bits),
      maxChunkBytes: this.options.chunkBytes,
      decode: (bytes, { samples }) => {
        const update = openSealed(bytes, aggregator);
        const pending = (joined = this.pending);
        // Staleness: the versions the model will have moved between the dispatch and the step this update joins.
        const staleness = pending.appliesTo - from;
        if (staleness > spec.maxStaleness) {
          decodeUpdate(update, global.lengths, spec.bits); // still validated: a malformed update is rejected, not just stale
          tooStale = true;
        } else pending.add(client.id, update, spec.bits, samples, staleness);
        return { staleness };
      },
    });
    this.inFlight.set(client.id, { client, round, collection });
    void collection.done.then((result) => {
      this.inFlight.delete(client.id);
      client.settleRound(round);
      const update = result.accepted[0];
      if (update && tooStale) this.tally.tooStale++;
      else if (update && joined) {
        joined.delivered(update.clientId, update.samples, update.value.staleness, update.wireBytes);
        this.options.events.uploadProgress({ taskId: id, round: global.version + 1, received: this.pending.count, expected: bufferSizeOf(spec) });
      } else if (result.rejected.length > 0) this.tally.rejected++;
      else this.tally.dropped++; // left, or did not deliver by the deadline
      this.waker.wake();
    });
    void sendRoundStarts([client], roundBase(this.task, this.options.chunkBytes, round, deadline, aggregator, null), global, this.options.signingKey);
  }
}

/**
 * The updates of one server step, taken as they arrive: folded into the running sum where
 * the rule has a fold (O(m) however large the buffer), held where it needs them all.
 * FedBuff's damping s(τ)·Δ is applied on the way in, each update weighed by its samples.
 */
class PendingStep {
  private readonly fold: UpdateFold | undefined;
  private readonly held: ClientUpdate[] = [];
  /** What the step's record counts of each update folded in. */
  readonly applied: Array<{ clientId: string; samples: number; staleness: number; wireBytes: number }> = [];

  constructor(
    private readonly global: GlobalModel,
    /** The model version this step will move. */
    readonly appliesTo: number,
  ) {
    this.fold = global.startFold();
  }

  get count(): number {
    return this.applied.length;
  }

  /** Validates and folds (or holds) one update; throws, having taken nothing, on a malformed one. */
  add(clientId: string, encoded: Uint8Array, bits: UpdateBits, samples: number, staleness: number): void {
    if (staleness === 0 && this.fold?.addEncoded) return this.fold.addEncoded(encoded, bits, samples);
    const decoded = discountForStaleness({ delta: decodeUpdate(encoded, this.global.lengths, bits), samples, staleness });
    const update = { clientId, delta: decoded.delta, weight: decoded.weight };
    if (this.fold) this.fold.add(update);
    else this.held.push(update);
  }

  /** Counts an update `add` took, once its collection has accepted it. */
  delivered(clientId: string, samples: number, staleness: number, wireBytes: number): void {
    this.applied.push({ clientId, samples, staleness, wireBytes });
  }

  input(): Contribution['input'] {
    if (this.fold) return { fold: this.fold };
    // A fixed order for rules that see each update: the same updates give the same step.
    return { updates: [...this.held].sort((a, b) => a.clientId.localeCompare(b.clientId)) };
  }
}
