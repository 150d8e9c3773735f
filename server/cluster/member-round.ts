import { generateBoxKeyPair, openSealed } from '../../shared/crypto/sodium.ts';
import { metricLimbsLength, plainMetricBytes, splitMetricSums } from '../../shared/codec/metric-sums.ts';
import { secureInputLength } from '../../shared/codec/secure-codec.ts';
import { TributaryError } from '../../shared/errors.ts';
import { addSums } from '../../shared/ml/objective.ts';
import { RunningSum } from '../../shared/ml/running-sum.ts';
import type { TaskRecord, TaskSpec } from '../../shared/protocol/task.ts';
import { newRingVector, ringBits } from '../../shared/secagg/ring.ts';
import type { ClientSession } from '../gateway/clients.ts';
import { collectUploads, plainUpdateMaxBytes, roundBase, sendRoundStarts } from '../rounds/dispatch.ts';
import { planEvaluation } from '../rounds/federated-evaluation.ts';
import type { GlobalModel } from '../rounds/global-model.ts';
import { accountParticipants } from '../rounds/participants.ts';
import type { RoundCollection } from '../rounds/round-collection.ts';
import type { RoundRun } from '../rounds/round-run.ts';
import type { CoordinatorOptions } from '../rounds/runner.ts';
import type { RoundPlan as LocalPlan } from '../rounds/scheduler.ts';
import { runSecureSum } from '../secagg/masked-round.ts';
import type { SecureRound } from '../secagg/secure-round.ts';
import type { Partial } from './partial.ts';
import type { RoundPlan } from './task-board.ts';

export interface MemberRoundRun {
  task: TaskRecord;
  /** The model at the plan's version. */
  global: GlobalModel;
  plan: RoundPlan;
  processId: string;
  options: CoordinatorOptions;
  /** The collection the runner routes this process's clients' chunks to while it runs. */
  collecting(collection: RoundCollection<unknown>): void;
  /** A secure round's protocol, for the runner to route its clients' phase messages to (undefined: over). */
  securing(protocol: SecureRound | undefined): void;
}

/** Fewest participants one process's SecAgg+ group may have: below it the group's sum would give its clients away. */
export function minimumGroup(spec: TaskSpec): number {
  return Math.max(3, spec.threshold);
}

/** The ring every secure group of a plan sums in: wide enough for the whole cohort, model levels then metric limbs. */
export function ringShape(spec: TaskSpec, lengths: readonly number[], plan: RoundPlan): { ringBits: number; length: number; modelLength: number; metricSums: number } {
  const cohort = Object.values(plan.quotas).reduce((a, b) => a + b, 0);
  const metricSums = planEvaluation(spec, plan.round, [])?.sums ?? 0;
  const bits = spec.bits as Exclude<TaskSpec['bits'], 32>;
  const modelLength = secureInputLength(lengths);
  return { ringBits: ringBits(bits, cohort), length: modelLength + metricLimbsLength(metricSums, bits), modelLength, metricSums };
}

/** This process's share of the plan: `quota` participants among its own ready clients, and their work. */
function localPlan(run: MemberRoundRun): { local: LocalPlan; quota: number } {
  const { task, plan, options } = run;
  const quota = plan.quotas[run.processId] ?? 0;
  const ready = options.scheduler.eligible(task);
  const local = options.scheduler.plan({ ...task, spec: { ...task.spec, clientsPerRound: quota } }, plan.round, ready);
  return { local: { ...local, participants: quota > 0 ? local.participants : [] }, quota };
}

/** This process's part of a cluster round, plain or secure; it always hands in a partial, an empty one if its group failed. */
export function runMemberRound(run: MemberRoundRun): Promise<Partial> {
  return run.task.spec.secure ? runMemberSecureRound(run) : runMemberPlainRound(run);
}

/**
 * This process's part of a cluster round: it selects its share of the participants among
 * its own clients, sends them configs sealed to its own fresh aggregator key (so no
 * private key ever leaves the process), opens and folds each update into its running sum
 * as it arrives, and returns the sum with its tallies for the leader to merge.
 */
async function runMemberPlainRound(run: MemberRoundRun): Promise<Partial> {
  const { task, global, plan, options } = run;
  const { spec } = task;
  const { local, quota } = localPlan(run);
  const { participants } = local;
  const evaluation = planEvaluation(spec, plan.round, participants.map((p) => p.id));
  const metricSums = evaluation?.sums ?? 0;
  const aggregator = generateBoxKeyPair();
  const sum = new RunningSum(global.lengths);
  const startedAt = Date.now();
  const collection = collectUploads<{ sums: Float64Array }>({
    taskId: task.id,
    round: plan.round,
    aggregatorKey: aggregator.publicKey,
    uploaders: participants,
    deadline: plan.deadline,
    enough: Math.min(quota, participants.length),
    maxBytes: plainUpdateMaxBytes(global.lengths, spec.bits) + plainMetricBytes(metricSums),
    maxChunkBytes: options.chunkBytes,
    decode: (bytes, { samples }) => {
      const { sums, update } = splitMetricSums(openSealed(bytes, aggregator), metricSums);
      sum.addEncoded(update, spec.bits, samples);
      return { sums };
    },
  });
  run.collecting(collection as RoundCollection<unknown>);
  if (participants.length > 0) {
    void sendRoundStarts(participants, roundBase(task, options.chunkBytes, plan.round, plan.deadline, aggregator, null, metricSums), global, options.signingKey, local.budgets, evaluation?.evaluators);
    options.events.roundStarted({ taskId: task.id, round: plan.round, participants: participants.map((p) => p.id), deadline: plan.deadline });
  }
  const collected = await collection.done;
  const detail = accountParticipants(local, spec, collected, { startedAt, now: Date.now() }, options.scheduler);
  for (const p of participants) p.settleRound(plan.round);
  const evaluated = collected.accepted.filter((u) => evaluation?.evaluators.has(u.clientId));
  const totals = new Float64Array(metricSums);
  for (const u of evaluated) addSums(totals, u.value.sums);
  return {
    planId: plan.planId,
    processId: run.processId,
    sum,
    dropped: collected.dropped.length,
    late: collected.late.length,
    rejected: collected.rejected.length,
    samples: collected.accepted.reduce((n, u) => n + u.samples, 0),
    uploadBytes: collected.accepted.reduce((n, u) => n + u.wireBytes, 0),
    participants: detail,
    evaluators: evaluated.length,
    metricSums: [...totals],
  };
}

/**
 * A secure cluster round's part on this process: its participants form one SecAgg+ group
 * (keys, shares and masked uploads relayed by this process alone), whose sum this process
 * unmasks. The ring is sized for the whole cohort and every group weighs by the plan's
 * sample scale, so the leader adds the groups' ring sums into the cohort's sum: the
 * hierarchical secure aggregation of Bonawitz et al. 2019 (§ 4.2), where each aggregator
 * runs SecAgg over its devices and the master adds the results. No process sees an input
 * or a sum of fewer than minimumGroup(spec) clients.
 */
async function runMemberSecureRound(run: MemberRoundRun): Promise<Partial> {
  const { task, global, plan, options } = run;
  const { spec } = task;
  const { local } = localPlan(run);
  const { participants } = local;
  const shape = ringShape(spec, global.lengths, plan);
  const startedAt = Date.now();
  const evaluation = planEvaluation(spec, plan.round, participants.map((p) => p.id));
  const empty = (dropped: readonly ClientSession[]): Partial => ({
    planId: plan.planId, processId: run.processId,
    sum: { ringBits: shape.ringBits, words: newRingVector(shape.ringBits, shape.length), survivors: 0 },
    dropped: dropped.length, late: 0, rejected: 0, samples: 0, uploadBytes: 0, participants: [], evaluators: 0, metricSums: [],
  });
  if (participants.length < minimumGroup(spec)) return empty(participants);
  const roundRun: RoundRun = {
    task, global, plan: local, startedAt, evaluation, options,
    announce: (base) => {
      void sendRoundStarts(participants, base, global, options.signingKey, local.budgets, evaluation?.evaluators);
      options.events.roundStarted({ taskId: task.id, round: plan.round, participants: participants.map((p) => p.id), deadline: plan.deadline });
    },
    collect: async (request) => {
      const collection = collectUploads({ ...request, taskId: task.id, round: plan.round, maxChunkBytes: options.chunkBytes });
      run.collecting(collection as RoundCollection<unknown>);
      return collection.done;
    },
    runProtocol: run.securing,
    account: (collected) => accountParticipants(local, spec, collected, { startedAt, now: Date.now() }, options.scheduler),
  };
  try {
    const cohort = Object.values(plan.quotas).reduce((a, b) => a + b, 0);
    const group = await runSecureSum(roundRun, { cohort, sampleScale: plan.sampleScale ?? 1, deadline: plan.deadline });
    return {
      planId: plan.planId,
      processId: run.processId,
      sum: { ringBits: group.config.ringBits, words: group.sum, survivors: group.survivors },
      dropped: group.dropped,
      late: 0,
      rejected: group.rejected,
      samples: group.samples,
      uploadBytes: group.uploadBytes,
      participants: group.participantsDetail,
      evaluators: group.evaluators,
      metricSums: [],
    };
  } catch (error) {
    if (!(error instanceof TributaryError)) throw error;
    options.log.warn({ taskId: task.id, round: plan.round, code: error.code, reason: error.message }, 'this process’s secure group failed; its participants count as dropped');
    return empty(participants);
  } finally {
    for (const p of participants) p.settleRound(plan.round);
  }
}
