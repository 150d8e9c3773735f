import { weightedMean } from '../../shared/ml/aggregate.ts';
import { SEAL_OVERHEAD_BYTES, concatBytes, generateBoxKeyPair, openSealed, randomBytes } from '../../shared/crypto/sodium.ts';
import { TributaryError } from '../../shared/errors.ts';
import type { ChunkAck, ChunkMeta } from '../../shared/protocol/events.ts';
import { decodeRing, ringBits, ringWireBytes, type RingVector } from '../../shared/secagg/ring.ts';
import { roundContext, secureParameters, type SecureRoundConfig } from '../../shared/secagg/protocol.ts';
import { decodeSecureSum, nextClips, secureInputLength } from '../../shared/codec/secure-codec.ts';
import type { ParticipantRecord, TaskRecord } from '../../shared/protocol/task.ts';
import { decodeUpdate } from '../../shared/codec/update-codec.ts';
import type { ClientSession } from '../gateway/clients.ts';
import type { CoordinatorOptions, TaskRunner } from './runner.ts';
import { collectUploads, plainUpdateMaxBytes, roundBase, sendRoundStarts, type RoundBase } from './dispatch.ts';
import type { Contribution, GlobalModel } from './global-model.ts';
import type { AcceptedUpdate, RoundCollection } from './round-collection.ts';
import type { RoundPlan } from './scheduler.ts';
import { SecureRound } from '../secagg/secure-round.ts';
import { Waker } from './waker.ts';

/** Longest wait for one phase of a secure round after the upload. */
const SECURE_PHASE_MS = 30_000;
/** Pause after an aborted round before selecting again. */
const ABORTED_ROUND_PAUSE_MS = 2_000;
/** Once a federation has run a round, a shrunk one (devices gone) carries on after this wait. */
const SHRUNK_FEDERATION_GRACE_MS = 5_000;

/** The round loop of a sync task: select, configure, collect, aggregate; the global model does the rest. */
export class SyncRunner implements TaskRunner {
  private stopped = false;
  private collection: RoundCollection<unknown> | undefined;
  private secure: { round: number; protocol: SecureRound } | undefined;
  private readonly waker = new Waker();
  private finishedRun: Promise<'completed' | 'stopped'> | undefined;
  private roundsTried = 0;

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
    this.collection?.abort();
    this.secure?.protocol.abort(new TributaryError('TASK_NOT_RUNNING', 'the task was stopped'));
    this.waker.wake();
    await this.finishedRun;
  }

  clientsChanged(): void {
    this.waker.wake();
  }

  acceptChunk(clientId: string, meta: ChunkMeta, data: Uint8Array): ChunkAck {
    const collection = this.collection;
    if (!collection) throw new TributaryError('ROUND_NOT_ACTIVE', 'no round is collecting updates');
    try {
      const ack = collection.acceptChunk(clientId, meta, data);
      const client = this.options.clients.get(clientId);
      client?.noteUpload(meta.round, ack.complete);
      if (ack.complete) client?.settleRound(meta.round);
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

  secureRound(round: number): SecureRound {
    if (!this.secure || this.secure.round !== round) throw new TributaryError('ROUND_NOT_ACTIVE', `no secure round ${round} is running`);
    return this.secure.protocol;
  }

  /**
   * A plain round keeps an away client's place (its upload resumes where it stopped); a
   * secure round cannot, since the phases' deferred answers went to the dead connection,
   * so SecAgg's drop-out handling takes over.
   */
  clientAway(clientId: string): void {
    if (this.secure) {
      this.secure.protocol.drop(clientId);
      this.collection?.drop(clientId); // its masked upload cannot resume either
    }
    this.waker.wake();
  }

  clientLeft(clientId: string): void {
    this.collection?.drop(clientId);
    this.secure?.protocol.drop(clientId);
    this.waker.wake();
  }

  private async loop(): Promise<'completed' | 'stopped'> {
    const { spec, id } = this.task;
    const { log } = this.options;
    const { global } = this;

    while (global.version < spec.rounds && !this.stopped) {
      const round = global.version + 1;
      const plan = await this.selectParticipants(round);
      if (this.stopped) break;
      const { participants } = plan;
      const startedAt = Date.now();
      this.roundsTried++;
      let contribution: Contribution | null;
      try {
        contribution = spec.secure
          ? await this.secureRoundOf(round, global, plan, startedAt)
          : await this.plainRound(round, global, plan, startedAt);
      } catch (error) {
        if (!(error instanceof TributaryError)) throw error;
        contribution = null;
        if (!this.stopped) {
          log.warn({ taskId: id, round, code: error.code, reason: error.message }, 'round aborted; model unchanged');
          this.options.events.roundAborted({ taskId: id, round, error: error.toBody() });
          await new Promise((resolve) => setTimeout(resolve, ABORTED_ROUND_PAUSE_MS)); // let departures register before retrying
        }
      }
      for (const p of participants) p.settleRound(round);
      if (this.stopped) break;
      if (contribution) await global.advance(contribution);
    }
    return global.version >= spec.rounds ? 'completed' : 'stopped';
  }

  /** Fewest ready clients a round may start with. */
  private minimumParticipants(): number {
    const { spec } = this.task;
    return spec.secure ? Math.max(spec.minUpdates, 3, spec.threshold) : spec.minUpdates;
  }

  /**
   * Waits until enough clients are ready (all of clientsPerRound; or the minimum, after
   * a round deadline's wait for the first round and a short grace once the federation has
   * run, so devices that vanished do not stall it), then lets the scheduler draw the
   * participants and size their work.
   */
  private async selectParticipants(round: number): Promise<RoundPlan> {
    const { spec } = this.task;
    const { scheduler } = this.options;
    const waitingSince = Date.now();
    const grace = this.roundsTried > 0 ? SHRUNK_FEDERATION_GRACE_MS : spec.roundDeadlineMs;
    const choosing = scheduler.choose(this.task);
    try {
      for (;;) {
        if (this.stopped) return { round, participants: [], enough: 0, budgets: new Map(), targetMs: 0 };
        const ready = scheduler.eligible(this.task);
        const waited = Date.now() - waitingSince;
        if (ready.length >= spec.clientsPerRound || (waited > grace && ready.length >= this.minimumParticipants())) {
          return scheduler.plan(this.task, round, ready);
        }
        await this.waker.sleep(1_000);
      }
    } finally {
      choosing.done();
    }
  }

  /**
   * What the round showed of each participant, for the scheduler's estimates and the
   * round's record: delivered in time, late (still at it when the round closed), dropped
   * or rejected.
   */
  private account(plan: RoundPlan, startedAt: number, collected: { accepted: readonly AcceptedUpdate<unknown>[]; late: readonly string[]; dropped: readonly string[] }): ParticipantRecord[] {
    const { scheduler } = this.options;
    const share = (c: ClientSession) => c.samples * this.task.spec.hyper.localEpochs;
    const accepted = new Map(collected.accepted.map((u) => [u.clientId, u]));
    const late = new Set(collected.late);
    const dropped = new Set(collected.dropped);
    return plan.participants.map((c) => {
      const budget = plan.budgets.get(c.id) ?? null;
      const update = accepted.get(c.id);
      const speed = scheduler.speedOf(c);
      if (update) scheduler.observe(c, budget ?? share(c), update.receivedAt - startedAt, true);
      else if (late.has(c.id)) scheduler.observe(c, budget ?? share(c), Date.now() - startedAt, false);
      const outcome = update ? 'delivered' : late.has(c.id) ? 'late' : dropped.has(c.id) ? 'dropped' : 'rejected';
      c.lastRound = { round: plan.round, budget, elapsedMs: update ? update.receivedAt - startedAt : null, deadlineMs: this.task.spec.roundDeadlineMs, outcome };
      return {
        clientId: c.id,
        kind: c.kind,
        backend: c.backend,
        speed,
        budget,
        samples: update?.samples ?? 0,
        elapsedMs: update ? update.receivedAt - startedAt : null,
        outcome,
      };
    });
  }

  private announce(base: RoundBase, global: GlobalModel, plan: RoundPlan): void {
    sendRoundStarts(plan.participants, base, global, this.options.signingKey, plan.budgets);
    this.options.events.roundStarted({ taskId: this.task.id, round: base.round, participants: plan.participants.map((p) => p.id), deadline: base.deadline });
  }

  private async collect<T>(round: number, uploaders: readonly ClientSession[], deadline: number, maxBytes: number, decode: (bytes: Uint8Array) => T, enough?: number) {
    const collection = collectUploads<T>({ taskId: this.task.id, round, uploaders, deadline, maxBytes, maxChunkBytes: this.options.chunkBytes, decode, ...(enough === undefined ? {} : { enough }) });
    this.collection = collection as RoundCollection<unknown>;
    try {
      return await collection.done;
    } finally {
      this.collection = undefined;
    }
  }

  /** A plain round: each update sealed to the aggregator, decoded, averaged by samples. */
  private async plainRound(round: number, global: GlobalModel, plan: RoundPlan, startedAt: number): Promise<Contribution | null> {
    const { spec } = this.task;
    const { participants } = plan;
    const deadline = Date.now() + spec.roundDeadlineMs;
    // A fresh aggregator key per round: a payload sealed for one round opens in no other.
    const aggregator = generateBoxKeyPair();
    const collecting = this.collect(
      round,
      participants,
      deadline,
      plainUpdateMaxBytes(global.lengths, spec.bits),
      (bytes) => decodeUpdate(openSealed(bytes, aggregator), global.lengths, spec.bits),
      plan.enough,
    );
    this.announce(roundBase(this.task, this.options.chunkBytes, round, deadline, aggregator, null), global, plan);
    const collected = await collecting;
    const participantsDetail = this.account(plan, startedAt, collected);
    if (collected.accepted.length < spec.minUpdates) {
      this.options.log.warn({ taskId: this.task.id, round, accepted: collected.accepted.length }, 'too few updates; retrying round');
      return null;
    }
    const started = performance.now();
    // A fixed order (by identity key, not arrival): the same updates give the same mean, bit for bit.
    const identity = new Map(participants.map((p) => [p.id, Buffer.from(p.identityKey)]));
    const ordered = [...collected.accepted].sort((a, b) => Buffer.compare(identity.get(a.clientId)!, identity.get(b.clientId)!));
    const mean = weightedMean(ordered.map((u) => ({ delta: u.value, weight: u.samples })));
    return {
      mean,
      aggregationMs: performance.now() - started,
      participants: collected.accepted.length,
      dropped: collected.dropped.length,
      late: collected.late.length,
      rejected: collected.rejected.length,
      samples: collected.accepted.reduce((n, u) => n + u.samples, 0),
      uploadBytes: collected.accepted.reduce((n, u) => n + u.wireBytes, 0),
      staleness: 0,
      startedAt,
      participantsDetail,
    };
  }

  /**
   * A secure round (SecAgg+): the server sees masked vectors only and learns their sum.
   * Clients pre-scale by samples, so the sum divided by the survivors' weight is FedAvg.
   */
  private async secureRoundOf(round: number, global: GlobalModel, plan: RoundPlan, startedAt: number): Promise<Contribution> {
    const { spec, id } = this.task;
    const { participants } = plan;
    // Each one's FedAvg weight: the distinct samples its share of work covers.
    const weightOf = (p: ClientSession) => Math.min(p.samples, plan.budgets.get(p.id) ?? p.samples);
    const now = Date.now();
    const deadline = now + spec.roundDeadlineMs;
    const phaseMs = Math.min(SECURE_PHASE_MS, spec.roundDeadlineMs / 4);
    const bits = spec.bits as Exclude<typeof spec.bits, 32>;
    const n = participants.length;
    const { neighbours, threshold } = secureParameters(n, spec.neighbours, spec.threshold);
    const clips = global.clips;
    const config: SecureRoundConfig = {
      participants: participants.map((p) => ({ clientId: p.id, samples: weightOf(p) })),
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
    const inputLength = secureInputLength(global.lengths);
    const w = config.ringBits;
    const protocol = new SecureRound({ config, context: roundContext(id, round, aggregator.publicKey), inputLength, phaseMs, unmask: this.options.unmask });
    // Every byte a participant sends this round counts: keys and shares as well as its upload.
    const startBytes = participants.map((p) => p.wireBytes());
    this.secure = { round, protocol };
    let rejected = 0;
    try {
      this.announce(roundBase(this.task, this.options.chunkBytes, round, deadline, aggregator, config), global, plan);
      let collectedUploads: Awaited<ReturnType<typeof this.collect<RingVector>>> | undefined;
      const { sum, survivors, unmaskMs } = await protocol.run(async (sharers) => {
        const collected = await this.collect<RingVector>(
          round,
          sharers.map((i) => participants[i]!),
          deadline,
          SEAL_OVERHEAD_BYTES + ringWireBytes(inputLength, w),
          (bytes) => decodeRing(openSealed(bytes, aggregator), w, inputLength),
        );
        rejected = collected.rejected.length;
        collectedUploads = collected;
        return new Map(collected.accepted.map((u) => [protocol.indexFor(u.clientId), u.value]));
      });
      const decodeStarted = performance.now();
      const meanSamples = config.participants.reduce((a, p) => a + p.samples, 0) / n;
      const samples = survivors.reduce((a, u) => a + config.participants[u]!.samples, 0);
      const reading = decodeSecureSum(sum, { bits, clips, lengths: global.lengths, survivors: survivors.length, weight: samples / meanSamples });
      global.clips = nextClips(clips, reading.rmsRatio, spec.clipSigma);
      this.options.log.debug({ taskId: id, round, clips: global.clips, rmsRatio: reading.rmsRatio }, 'secure round unmasked');
      return {
        mean: reading.mean,
        aggregationMs: unmaskMs + performance.now() - decodeStarted,
        participants: survivors.length,
        dropped: n - survivors.length - rejected,
        late: 0,
        rejected,
        samples,
        uploadBytes: survivors.reduce((a, u) => a + participants[u]!.wireBytes() - startBytes[u]!, 0),
        staleness: 0,
        startedAt,
        ...(collectedUploads ? { participantsDetail: this.account(plan, startedAt, collectedUploads) } : {}),
      };
    } finally {
      this.secure = undefined;
    }
  }
}
