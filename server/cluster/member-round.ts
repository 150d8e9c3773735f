import { generateBoxKeyPair, openSealed } from '../../shared/crypto/sodium.ts';
import { plainMetricBytes, splitMetricSums } from '../../shared/codec/metric-sums.ts';
import { addSums } from '../../shared/ml/objective.ts';
import { RunningSum } from '../../shared/ml/running-sum.ts';
import type { TaskRecord } from '../../shared/protocol/task.ts';
import { collectUploads, plainUpdateMaxBytes, roundBase, sendRoundStarts } from '../rounds/dispatch.ts';
import { planEvaluation } from '../rounds/federated-evaluation.ts';
import type { GlobalModel } from '../rounds/global-model.ts';
import { accountParticipants } from '../rounds/participants.ts';
import type { RoundCollection } from '../rounds/round-collection.ts';
import type { CoordinatorOptions } from '../rounds/runner.ts';
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
}

/**
 * This process's part of a cluster round: it selects its share of the participants among
 * its own clients, sends them configs sealed to its own fresh aggregator key (so no
 * private key ever leaves the process), opens and folds each update into its running sum
 * as it arrives, and returns the sum with its tallies for the leader to merge.
 */
export async function runMemberRound(run: MemberRoundRun): Promise<Partial> {
  const { task, global, plan, options } = run;
  const { spec } = task;
  const quota = plan.quotas[run.processId] ?? 0;
  const ready = options.scheduler.eligible(task);
  const local = options.scheduler.plan({ ...task, spec: { ...spec, clientsPerRound: quota } }, plan.round, ready);
  const participants = quota > 0 ? local.participants : [];
  const evaluation = planEvaluation(spec, plan.round, participants.map((p) => p.id));
  const metricSums = evaluation?.sums ?? 0;
  const aggregator = generateBoxKeyPair();
  const sum = new RunningSum(global.lengths);
  const startedAt = Date.now();
  const collection = collectUploads<{ sums: Float64Array }>({
    taskId: task.id,
    round: plan.round,
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
  const detail = accountParticipants({ ...local, participants }, spec, collected, { startedAt, now: Date.now() }, options.scheduler);
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
