import { TributaryError } from '../../shared/errors.ts';
import { objectiveOf } from '../../shared/ml/objective.ts';
import { RunningSum } from '../../shared/ml/running-sum.ts';
import { decodeMetricLimbs } from '../../shared/codec/metric-sums.ts';
import { addInto, newRingVector } from '../../shared/secagg/ring.ts';
import type { ChunkAck, ChunkMeta } from '../../shared/protocol/events.ts';
import { evaluatesFederatedly, type TaskRecord, type TaskSpec } from '../../shared/protocol/task.ts';
import { acceptUploadChunk } from '../rounds/dispatch.ts';
import { federatedMetrics } from '../rounds/federated-evaluation.ts';
import { GlobalModel, type Contribution } from '../rounds/global-model.ts';
import type { RoundCollection } from '../rounds/round-collection.ts';
import type { CoordinatorOptions, TaskRunner } from '../rounds/runner.ts';
import { Waker } from '../rounds/waker.ts';
import { readSecureSum } from '../secagg/masked-round.ts';
import type { SecureRound } from '../secagg/secure-round.ts';
import { requireTask } from '../store/store.ts';
import { minimumUpdates } from '../strategies/combine/index.ts';
import { LeaderLease } from './leader-lease.ts';
import { minimumGroup, ringShape, runMemberRound } from './member-round.ts';
import { decodePartial, encodePartial, type Partial, type RingSum } from './partial.ts';
import type { RedisClient } from './redis.ts';
import { TaskBoard, type Member, type RoundPlan } from './task-board.ts';

/** What cluster mode gives each task's runner. */
export interface ClusterContext {
  redis: RedisClient;
  board: TaskBoard;
  /** This server process, unique in the cluster (host, pid, nonce). */
  processId: string;
}

/** How often a process reports its ready clients and reads the plan, and the leader polls. */
const TICK_MS = 250;
/**
 * The leader lease's time to live: a dead leader's task moves on after at most this. Longer
 * than the event-loop stalls of a loaded process (sending a round's configs): at 5 s, four
 * servers sharing two cores with 40,000 clients lost and retook their leases mid-round.
 */
export const LEASE_TTL_MS = 15_000;
/** Past the round's deadline, how long the leader waits for partials still on their way. */
const PARTIAL_GRACE_MS = 5_000;
/** Once a federation has run a round, a shrunk one (devices gone) carries on after this wait. */
const SHRUNK_FEDERATION_GRACE_MS = 5_000;
/** Pause after an aborted round before planning again. */
const ABORTED_ROUND_PAUSE_MS = 2_000;

/** Cluster mode runs sync tasks, plain or secure, whose step needs only the sum of the updates; CLUSTER_UNSUPPORTED for the rest. */
export function checkClusterSupport(spec: TaskSpec): void {
  const why = spec.mode !== 'sync' ? 'async mode'
    : spec.aggregation.rule !== 'mean' ? `the ${spec.aggregation.rule} combine rule`
    : spec.aggregation.normBound > 0 && !spec.secure ? 'server-side norm bounding'
    : spec.privacy.mode === 'central' ? 'central DP'
    : spec.privacy.mode === 'distributed' ? 'distributed DP (each group would carry only its share of the noise)'
    : undefined;
  if (why) throw new TributaryError('CLUSTER_UNSUPPORTED', `${why}: run it on a single server process`);
}

/**
 * Participants to ask of each member: `wanted` in proportion to its ready clients (largest
 * remainder), never more than it has. With a `minimum` (a secure round's smallest group),
 * a member that would get fewer gets none, and the rest share its part.
 */
export function allocateQuotas(wanted: number, members: readonly Member[], minimum = 1): Record<string, number> {
  let eligible = members.filter((m) => m.ready >= minimum);
  for (;;) {
    const quotas = proportionalQuotas(wanted, eligible);
    const short = eligible.filter((m) => quotas[m.processId]! > 0 && quotas[m.processId]! < minimum);
    if (short.length === 0) return Object.fromEntries(members.map((m) => [m.processId, quotas[m.processId] ?? 0]));
    const smallest = short.reduce((a, b) => (b.ready < a.ready || (b.ready === a.ready && b.processId > a.processId) ? b : a));
    eligible = eligible.filter((m) => m !== smallest);
  }
}

/**
 * Whether the leader has every partial it may still get: each asked member's, or word that
 * the member is gone. Members unknown (Redis did not answer in time) say nothing of who is
 * gone: a lookup that failed once read as "all gone" and aborted a 4,000-client round.
 */
export function partialsSettled(asked: readonly string[], got: ReadonlyMap<string, unknown>, alive: ReadonlySet<string> | undefined): boolean {
  return asked.every((id) => got.has(id) || (alive !== undefined && !alive.has(id)));
}

function proportionalQuotas(wanted: number, members: readonly Member[]): Record<string, number> {
  const total = members.reduce((n, m) => n + m.ready, 0);
  const target = Math.min(wanted, total);
  const shares = members.map((m) => ({ id: m.processId, ready: m.ready, exact: total === 0 ? 0 : (target * m.ready) / total }));
  const quotas = Object.fromEntries(shares.map((s) => [s.id, Math.floor(s.exact)]));
  let left = target - Object.values(quotas).reduce((a, b) => a + b, 0);
  for (const s of [...shares].sort((a, b) => b.exact - Math.floor(b.exact) - (a.exact - Math.floor(a.exact)) || a.id.localeCompare(b.id))) {
    if (left === 0) break;
    if (quotas[s.id]! < s.ready) {
      quotas[s.id]!++;
      left--;
    }
  }
  return quotas;
}

/**
 * A sync plain task in cluster mode. Every process runs one: as a member it reports its
 * ready clients, and when the task's plan asks for some of them it runs that share of the
 * round (member-round.ts) and leaves its partial sum on the board. The process holding
 * the task's leader lease also leads: it plans each round across the members, merges
 * their partials and advances the global model, checkpointing and recording the round.
 * A leader that dies mid-round leaves a round nobody merges: the next leader plans it
 * afresh from the last recorded round, and the store records each round once, in order.
 */
export class ClusterRunner implements TaskRunner {
  private stopped = false;
  private finishedRun: Promise<'completed' | 'stopped'> | undefined;
  private complete!: (outcome: 'completed' | 'stopped') => void;
  /** One per loop: a Waker wakes a single sleeper. */
  private readonly memberWaker = new Waker();
  private readonly heartbeatWaker = new Waker();
  private readonly leaderWaker = new Waker();
  private readonly lease: LeaderLease;
  /** The model members train from: the plan's version. */
  private memberModel: GlobalModel;
  private memberPlan: string | undefined;
  private collection: RoundCollection<unknown> | undefined;
  /** The secure round this process's group runs now, and its round number. */
  private secure: { protocol: SecureRound; round: number } | undefined;
  /** The fencing token of the leadership running now, if this process leads. */
  private leadingToken: number | undefined;

  constructor(
    private readonly task: TaskRecord,
    global: GlobalModel,
    private readonly options: CoordinatorOptions,
    private readonly cluster: ClusterContext,
  ) {
    this.memberModel = global;
    this.lease = new LeaderLease({
      redis: cluster.redis,
      taskId: task.id,
      ttlMs: LEASE_TTL_MS,
      holderId: cluster.processId,
      log: options.log,
      onAcquired: (token) => void this.lead(token),
      onLost: () => (this.leadingToken = undefined),
    });
  }

  /** Whether this process leads the task now. */
  get leading(): boolean {
    return this.leadingToken !== undefined && this.lease.holds();
  }

  run(): Promise<'completed' | 'stopped'> {
    this.finishedRun ??= new Promise((resolve) => {
      this.complete = resolve;
      this.lease.start();
      void this.heartbeatLoop();
      void this.memberLoop();
    });
    return this.finishedRun;
  }

  async stop(): Promise<void> {
    this.end('stopped');
    await this.finishedRun;
  }

  clientsChanged(): void {}

  /** A plain round keeps an away client's place (its upload resumes); a secure group cannot (see SyncRunner.clientAway). */
  clientAway(clientId: string): void {
    if (!this.secure) return;
    this.secure.protocol.drop(clientId);
    this.collection?.drop(clientId);
  }

  clientLeft(clientId: string): void {
    this.collection?.drop(clientId);
    this.secure?.protocol.drop(clientId);
  }

  acceptChunk(clientId: string, meta: ChunkMeta, data: Uint8Array): ChunkAck {
    return acceptUploadChunk(this.collection, this.options, this.task, clientId, meta, data);
  }

  secureRound(round: number): SecureRound {
    if (this.secure?.round !== round) throw new TributaryError('ROUND_NOT_ACTIVE', `no secure round ${round} runs on this process`);
    return this.secure.protocol;
  }

  private end(outcome: 'completed' | 'stopped'): void {
    if (this.stopped) return;
    this.stopped = true;
    this.leadingToken = undefined;
    this.collection?.abort();
    this.secure?.protocol.abort(new TributaryError('TASK_NOT_RUNNING', 'the task was stopped'));
    this.memberWaker.wake();
    this.heartbeatWaker.wake();
    this.leaderWaker.wake();
    void this.lease.release();
    void this.cluster.board.leave(this.task.id, this.cluster.processId).catch(() => {});
    this.complete(outcome);
  }

  // ---- member ----

  /**
   * Tells the leader this member lives and how many clients it has ready. A loop of its own:
   * behind a slow plan read or model load, heartbeats went stale under load and the leader
   * closed rounds without the partials of members it took for gone.
   */
  private async heartbeatLoop(): Promise<void> {
    const { board, processId } = this.cluster;
    while (!this.stopped) {
      const ready = this.options.scheduler.eligible(this.task);
      await board.heartbeat(this.task.id, { processId, ready: ready.length, samples: ready.reduce((n, c) => n + c.samples, 0), at: Date.now() })
        .catch((error: unknown) => this.options.log.debug({ err: error, taskId: this.task.id }, 'cluster heartbeat failed'));
      await this.heartbeatWaker.sleep(TICK_MS);
    }
  }

  private async memberLoop(): Promise<void> {
    const { board, processId } = this.cluster;
    while (!this.stopped) {
      try {
        const plan = await board.plan(this.task.id);
        if (plan && plan.planId !== this.memberPlan && (plan.quotas[processId] ?? 0) > 0 && plan.deadline > Date.now()) await this.joinPlan(plan);
      } catch (error) {
        this.options.log.debug({ err: error, taskId: this.task.id }, 'cluster member step failed');
      }
      await this.memberWaker.sleep(TICK_MS);
    }
  }

  /** Runs this process's share of `plan`, ending the share of an older plan it may still be in. */
  private async joinPlan(plan: RoundPlan): Promise<void> {
    if (plan.version !== this.memberModel.version) {
      const task = await requireTask(this.options.store, this.task.id);
      if (task.completedRounds !== plan.version) return; // the store has not caught up with the plan yet (or the plan is stale)
      this.memberModel = await GlobalModel.open(task, this.modelOptions());
    }
    this.memberPlan = plan.planId;
    this.collection?.abort();
    this.secure?.protocol.abort(new TributaryError('ROUND_NOT_ACTIVE', `plan ${plan.planId} replaced this round`));
    const global = this.memberModel;
    void runMemberRound({
      task: this.task, global, plan, processId: this.cluster.processId, options: this.options,
      collecting: (collection) => (this.collection = collection),
      securing: (protocol) => {
        if (protocol) this.secure = { protocol, round: plan.round };
        else if (this.secure && this.secure.round === plan.round) this.secure = undefined;
      },
    })
      // Until the leader stops waiting for it.
      .then((partial) => this.cluster.board.putPartial(this.task.id, plan.planId, this.cluster.processId, encodePartial(partial), plan.deadline + PARTIAL_GRACE_MS))
      .catch((error: unknown) => this.options.log.warn({ err: error, taskId: this.task.id, round: plan.round }, 'could not hand in this process’s partial'));
  }

  private modelOptions() {
    return { ...this.options, testSet: () => this.options.testSet(this.task) };
  }

  // ---- leader ----

  private leads(token: number): boolean {
    return !this.stopped && this.leadingToken === token && this.lease.holds();
  }

  private async lead(token: number): Promise<void> {
    this.leadingToken = token;
    const { log } = this.options;
    try {
      // From the store, not from memory: the last leader may have recorded rounds since this process last looked.
      const global = await GlobalModel.open(await requireTask(this.options.store, this.task.id), { ...this.modelOptions(), fence: token });
      log.info({ taskId: this.task.id, token, round: global.version + 1 }, 'leading the task');
      for (let attempt = 0; this.leads(token) && !global.finished; attempt++) {
        const contribution = await this.leadRound(global, token, attempt);
        if (!contribution || !this.leads(token)) continue;
        await global.advance(contribution);
      }
      if (global.finished && this.leads(token)) this.end('completed');
    } catch (error) {
      // ROUND_OUT_OF_ORDER: another leader recorded the round; whoever leads next starts from the store again.
      log.warn({ err: error, taskId: this.task.id, token }, 'stopped leading the task');
      if (this.leadingToken === token) void this.lease.release().then(() => !this.stopped && this.lease.start());
    } finally {
      if (this.leadingToken === token) this.leadingToken = undefined;
    }
  }

  /** Plans one round across the members, waits for their partials and merges them; null when the round must run again. */
  private async leadRound(global: GlobalModel, token: number, attempt: number): Promise<Contribution | null> {
    const { spec } = this.task;
    const { board } = this.cluster;
    const round = global.version + 1;
    const members = await this.readyMembers(token, attempt);
    if (!this.leads(token)) return null;
    const startedAt = Date.now();
    const quotas = allocateQuotas(spec.clientsPerRound, members, spec.secure ? minimumGroup(spec) : 1);
    const asked = members.filter((m) => quotas[m.processId]! > 0);
    const plan: RoundPlan = {
      taskId: this.task.id, round, planId: `${token}.${round}.${attempt}`, version: global.version,
      deadline: startedAt + spec.roundDeadlineMs, quotas,
      // The cohort's mean samples: every group's clients weigh their inputs by it.
      ...(spec.secure ? { sampleScale: asked.reduce((n, m) => n + m.samples, 0) / Math.max(1, asked.reduce((n, m) => n + m.ready, 0)) || 1 } : {}),
    };
    if (!(await board.putPlan(plan, token))) return null;
    this.memberWaker.wake(); // this process's member part reads it now
    const partials = await this.gather(plan, token);
    if (!this.leads(token)) return null;
    const merged = this.merge(global, plan, partials);
    const needed = Math.max(spec.minUpdates, minimumUpdates(spec.aggregation));
    if (merged.participants < needed) {
      this.options.log.warn({ taskId: this.task.id, round, accepted: merged.participants, needed }, 'cluster round aborted: too few updates; model unchanged');
      this.options.events.roundAborted({ taskId: this.task.id, round, error: new TributaryError('ROUND_NOT_ACTIVE', `${merged.participants} of ${needed} updates arrived`).toBody() });
      await this.leaderWaker.sleep(ABORTED_ROUND_PAUSE_MS);
      return null;
    }
    return { ...merged, startedAt };
  }

  /** Waits until the members have clientsPerRound ready between them, or the minimum after a grace. */
  private async readyMembers(token: number, attempt: number): Promise<Member[]> {
    const { spec } = this.task;
    const since = Date.now();
    const grace = attempt > 0 || this.memberModel.version > 0 ? SHRUNK_FEDERATION_GRACE_MS : spec.roundDeadlineMs;
    for (;;) {
      const members = await this.cluster.board.members(this.task.id);
      const ready = members.reduce((n, m) => n + m.ready, 0);
      if (!this.leads(token) || ready >= spec.clientsPerRound || (Date.now() - since > grace && ready >= spec.minUpdates)) return members;
      await this.leaderWaker.sleep(TICK_MS);
    }
  }

  /** The partials of every member the plan asked, as they come in; a member that stops reporting, or the deadline's grace, ends the wait for it. */
  private async gather(plan: RoundPlan, token: number): Promise<Map<string, Partial>> {
    const asked = Object.keys(plan.quotas).filter((id) => plan.quotas[id]! > 0);
    const { lengths } = this.memberModel;
    const shape = this.task.spec.secure ? { lengths, ring: ringShape(this.task.spec, lengths, plan) } : { lengths };
    const got = new Map<string, Partial>();
    while (this.leads(token) && Date.now() < plan.deadline + PARTIAL_GRACE_MS) {
      const waiting = asked.filter((id) => !got.has(id));
      for (const [id, bytes] of await this.cluster.board.partials(this.task.id, plan.planId, waiting).catch(() => new Map<string, Uint8Array>())) {
        try {
          got.set(id, decodePartial(bytes, shape));
        } catch (error) {
          this.options.log.error({ err: error, processId: id }, 'a member’s partial does not decode; left out');
          asked.splice(asked.indexOf(id), 1);
        }
      }
      const members = await this.cluster.board.members(this.task.id).catch(() => undefined);
      if (partialsSettled(asked, got, members && new Set(members.map((m) => m.processId)))) break;
      await this.leaderWaker.sleep(TICK_MS);
    }
    return got;
  }

  /** The partials added up (in a fixed order, by process id, so the same partials merge to the same sum) with their tallies. */
  private merge(global: GlobalModel, plan: RoundPlan, partials: Map<string, Partial>): Omit<Contribution, 'startedAt'> {
    const { spec } = this.task;
    const ordered = [...partials.keys()].sort().map((id) => partials.get(id)!);
    const tally = { dropped: 0, late: 0, rejected: 0, samples: 0, uploadBytes: 0 };
    let evaluators = 0;
    for (const p of ordered) {
      for (const k of Object.keys(tally) as (keyof typeof tally)[]) tally[k] += p[k];
      evaluators += p.evaluators;
    }
    // Participants of members that never handed their partial in count as dropped.
    for (const [id, quota] of Object.entries(plan.quotas)) if (!partials.has(id)) tally.dropped += quota;
    const common = { ...tally, staleness: 0, aggregationMs: 0, participantsDetail: ordered.flatMap((p) => p.participants) };
    if (spec.secure) {
      const { ringBits, length, modelLength, metricSums } = ringShape(spec, global.lengths, plan);
      const total = newRingVector(ringBits, length);
      let survivors = 0;
      for (const p of ordered) {
        const ring = p.sum as RingSum;
        addInto(total, ring.words, ringBits);
        survivors += ring.survivors;
      }
      const { mean, clips } = readSecureSum(total.subarray(0, modelLength), { ringBits, clips: [...global.clips], sampleScale: plan.sampleScale ?? 1 }, { survivors, samples: tally.samples }, spec, global.lengths, undefined);
      const federated = evaluators > 0 ? federatedMetrics(spec, global.version, evaluators, decodeMetricLimbs(total.subarray(modelLength), metricSums, spec.bits)) : null;
      return { ...common, input: { mean }, clips, participants: survivors, federated };
    }
    const sum = new RunningSum(global.lengths);
    const metricSums = new Float64Array(evaluatesFederatedly(spec) ? objectiveOf(spec.data).sumsLength : 0);
    for (const p of ordered) {
      sum.merge(p.sum as RunningSum);
      p.metricSums.forEach((v, i) => i < metricSums.length && (metricSums[i]! += v));
    }
    return { ...common, input: { sum }, participants: sum.count, federated: evaluators > 0 ? federatedMetrics(spec, global.version, evaluators, metricSums) : null };
  }
}
