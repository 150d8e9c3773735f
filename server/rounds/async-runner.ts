import { discountForStaleness, type BufferedUpdate, type Weights } from '../../shared/ml/aggregate.ts';
import { generateBoxKeyPair, openSealed } from '../../shared/crypto/sodium.ts';
import { TributaryError } from '../../shared/errors.ts';
import type { ChunkAck, ChunkMeta } from '../../shared/protocol/events.ts';
import { createRng, deriveSeed, shuffleInPlace } from '../../shared/random.ts';
import { bufferSizeOf, type TaskRecord } from '../../shared/protocol/task.ts';
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
  collection: RoundCollection<Weights>;
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
  /** Arrived updates with the model version each trained from; staleness is counted when they are applied. */
  private buffer: Array<{ clientId: string; delta: Weights; samples: number; from: number; wireBytes: number }> = [];
  private tally = newTally();
  private dispatches = 0;
  private readonly waker = new Waker();
  private finishedRun: Promise<'completed' | 'stopped'> | undefined;

  constructor(
    private readonly task: TaskRecord,
    private readonly global: GlobalModel,
    private readonly options: CoordinatorOptions,
  ) {}

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
      if (this.buffer.length >= k) {
        const contribution = this.step(this.buffer.splice(0, k), global.version);
        if (contribution) await global.advance(contribution);
        continue;
      }
      this.handOutWork(global);
      await this.waker.sleep(1_000);
    }
    for (const dispatch of this.inFlight.values()) dispatch.collection.abort();
    if (global.budgetSpent) this.options.log.info({ taskId: this.task.id, round: global.version }, 'privacy budget spent: the task stops before exceeding it');
    return global.finished ? 'completed' : 'stopped';
  }

  /**
   * The buffered updates as one server step's contribution, or null when all were too
   * stale. Staleness is the versions the model moved between an update's dispatch and now.
   */
  private step(buffered: AsyncRunner['buffer'], version: number): Contribution | null {
    const started = performance.now();
    const tally = this.tally;
    const aged = buffered.map((u) => ({ ...u, staleness: version - u.from }));
    const batch: Array<BufferedUpdate & { clientId: string; wireBytes: number }> = aged.filter((u) => u.staleness <= this.task.spec.maxStaleness);
    tally.tooStale += aged.length - batch.length;
    if (batch.length === 0) return null;
    this.tally = newTally();
    return {
      input: { updates: batch.map((u) => ({ clientId: u.clientId, ...discountForStaleness(u) })) },
      aggregationMs: performance.now() - started,
      participants: batch.length,
      dropped: tally.dropped,
      late: batch.filter((u) => u.staleness > 0).length + tally.tooStale,
      rejected: tally.rejected,
      samples: batch.reduce((a, u) => a + u.samples, 0),
      uploadBytes: batch.reduce((a, u) => a + u.wireBytes, 0),
      staleness: batch.reduce((a, u) => a + u.staleness, 0) / batch.length,
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
    const collection = collectUploads<Weights>({
      taskId: id,
      round,
      uploaders: [client],
      deadline,
      maxBytes: plainUpdateMaxBytes(global.lengths, spec.bits),
      maxChunkBytes: this.options.chunkBytes,
      decode: (bytes) => decodeUpdate(openSealed(bytes, aggregator), global.lengths, spec.bits),
    });
    this.inFlight.set(client.id, { client, round, collection });
    void collection.done.then((result) => {
      this.inFlight.delete(client.id);
      client.settleRound(round);
      const update = result.accepted[0];
      if (update) {
        this.buffer.push({ clientId: update.clientId, delta: update.value, samples: update.samples, from, wireBytes: update.wireBytes });
        this.options.events.uploadProgress({ taskId: id, round: global.version + 1, received: this.buffer.length, expected: bufferSizeOf(spec) });
      } else if (result.rejected.length > 0) this.tally.rejected++;
      else this.tally.dropped++; // left, or did not deliver by the deadline
      this.waker.wake();
    });
    void sendRoundStarts([client], roundBase(this.task, this.options.chunkBytes, round, deadline, aggregator, null), global, this.options.signingKey);
  }
}
