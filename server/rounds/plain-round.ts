import { generateBoxKeyPair, openSealed } from '../../shared/crypto/sodium.ts';
import { decodeUpdate } from '../../shared/codec/update-codec.ts';
import { minimumUpdates } from '../strategies/combine/index.ts';
import { plainUpdateMaxBytes, roundBase } from './dispatch.ts';
import type { Contribution } from './global-model.ts';
import type { RoundRun } from './round-run.ts';
import { plainMetricBytes, splitMetricSums } from '../../shared/codec/metric-sums.ts';
import { addSums } from '../../shared/ml/objective.ts';
import { federatedMetrics, type EvaluationPlan } from './federated-evaluation.ts';
import type { FederatedMetrics } from '../../shared/protocol/task.ts';
import type { Weights } from '../../shared/ml/aggregate.ts';
import type { ClientUpdate } from '../strategies/strategy.ts';
import type { AcceptedUpdate } from './round-collection.ts';

/** The accepted evaluators' summed metric sums as the round's federated scores of the model they were sent. */
function evaluatedBy(run: RoundRun, evaluation: EvaluationPlan, accepted: readonly { clientId: string; value: { sums: Float64Array } }[]): FederatedMetrics | null {
  const evaluators = accepted.filter((u) => evaluation.evaluators.has(u.clientId));
  const total = new Float64Array(evaluation.sums);
  for (const u of evaluators) addSums(total, u.value.sums);
  return federatedMetrics(run.task.spec, run.global.version, evaluators.length, total);
}

/**
 * A plain round: each update sealed to a fresh aggregator key, opened and folded into the
 * running sum as it arrives (O(m) memory), or kept whole for a rule that needs every
 * update. Null when fewer than minUpdates arrived (the runner retries the round).
 */
export async function runPlainRound(run: RoundRun): Promise<Contribution | null> {
  const { task, global, plan, options, evaluation } = run;
  const { spec } = task;
  const deadline = Date.now() + spec.roundDeadlineMs;
  // A fresh aggregator key per round: a payload sealed for one round opens in no other.
  const aggregator = generateBoxKeyPair();
  const metricSums = evaluation?.sums ?? 0;
  const fold = global.startFold();
  const collecting = run.collect<{ sums: Float64Array; delta?: Weights }>({
    aggregatorKey: aggregator.publicKey,
    uploaders: plan.participants,
    deadline,
    maxBytes: plainUpdateMaxBytes(global.lengths, spec.bits) + plainMetricBytes(metricSums),
    decode: (bytes, { clientId, samples }) => {
      const { sums, update } = splitMetricSums(openSealed(bytes, aggregator), metricSums);
      if (fold?.addEncoded) fold.addEncoded(update, spec.bits, samples);
      else {
        const delta = decodeUpdate(update, global.lengths, spec.bits);
        if (!fold) return { sums, delta };
        fold.add({ clientId, delta, weight: samples });
      }
      return { sums };
    },
    enough: plan.enough,
  });
  run.announce(roundBase(task, options.chunkBytes, plan.round, deadline, aggregator, null, metricSums));
  const collected = await collecting;
  const participantsDetail = run.account(collected);
  if (collected.accepted.length < Math.max(spec.minUpdates, minimumUpdates(spec.aggregation))) {
    options.log.warn({ taskId: task.id, round: plan.round, accepted: collected.accepted.length }, 'too few updates; retrying round');
    return null;
  }
  const started = performance.now();
  return {
    input: fold ? { fold } : { updates: inIdentityOrder(run, collected.accepted) },
    federated: evaluation ? evaluatedBy(run, evaluation, collected.accepted) : null,
    aggregationMs: performance.now() - started,
    participants: collected.accepted.length,
    dropped: collected.dropped.length,
    late: collected.late.length,
    rejected: collected.rejected.length,
    samples: collected.accepted.reduce((n, u) => n + u.samples, 0),
    uploadBytes: collected.accepted.reduce((n, u) => n + u.wireBytes, 0),
    staleness: 0,
    startedAt: run.startedAt,
    participantsDetail,
  };
}

/** A fixed order (by identity key, not arrival): the same updates give the same combined step, bit for bit. */
function inIdentityOrder(run: RoundRun, accepted: readonly AcceptedUpdate<{ delta?: Weights }>[]): ClientUpdate[] {
  const identity = new Map(run.plan.participants.map((p) => [p.id, Buffer.from(p.identityKey)]));
  const ordered = [...accepted].sort((a, b) => Buffer.compare(identity.get(a.clientId)!, identity.get(b.clientId)!));
  return ordered.map((u) => ({ clientId: u.clientId, delta: u.value.delta!, weight: u.samples }));
}
