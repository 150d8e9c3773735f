import { objectiveOf } from '../../shared/ml/objective.ts';
import { finiteMetrics } from '../../shared/ml/evaluate.ts';
import { createRng, deriveSeed, shuffleInPlace } from '../../shared/random.ts';
import { evaluatesFederatedly, type FederatedMetrics, type TaskSpec } from '../../shared/protocol/task.ts';

/**
 * Federated evaluation of a round: which participants score the model they were sent on
 * their held-out data, and how many metric sums every upload carries. Each asked device
 * reports its objective's sample-weighted sums (shared/ml/objective.ts) with its update;
 * the sums add up across devices, in a secure round inside the masked sum.
 */
export interface EvaluationPlan {
  /** Length of the metric-sums vector every upload of the round carries. */
  sums: number;
  /** Session ids of the participants asked to evaluate; the others send zeros. */
  evaluators: ReadonlySet<string>;
}

/** The round's evaluation, or undefined when it does not evaluate: every `every` rounds of a task that evaluates federatedly. */
export function planEvaluation(spec: TaskSpec, round: number, participants: readonly string[]): EvaluationPlan | undefined {
  const { every, fraction } = spec.evaluation;
  if (!evaluatesFederatedly(spec) || (round - 1) % every !== 0) return undefined;
  const chosen = shuffleInPlace([...participants].sort(), createRng(deriveSeed('evaluators', spec.seed, round)));
  const count = Math.max(1, Math.round(fraction * participants.length));
  return { sums: objectiveOf(spec.data).sumsLength, evaluators: new Set(chosen.slice(0, count)) };
}

/** The round's federated scores of model `version`, from the summed metric sums of `clients` evaluators. */
export function federatedMetrics(spec: TaskSpec, version: number, clients: number, sums: ArrayLike<number>): FederatedMetrics | null {
  const samples = Math.round(sums[0] ?? 0);
  if (clients === 0 || samples === 0) return null;
  return { version, clients, samples, metrics: finiteMetrics(objectiveOf(spec.data).metrics(sums)) };
}
