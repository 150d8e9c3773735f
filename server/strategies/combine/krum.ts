import { weightedMean } from '../../../shared/ml/aggregate.ts';
import type { Aggregation } from '../../../shared/protocol/task.ts';
import type { ClientUpdate, CombineRule } from '../strategy.ts';
import { checkBatch, copyWeights } from './batch.ts';
import { pairwiseSquaredDistances } from './distances.ts';

/**
 * Krum and Multi-Krum (Blanchard et al. 2017). Each update is scored by the sum of its
 * squared distances to its n − f − 2 nearest others: an update among honest ones scores low,
 * an attacker's far away scores high. Krum takes the best-scored update as the step;
 * Multi-Krum averages the `select` best, sample-weighted as Flower does.
 */

/** Krum needs n > 2f + 2 for its guarantee. */
export function krumMinimum(byzantine: number): number {
  return 2 * byzantine + 3;
}

/** Multi-Krum also needs `select` updates left once f are set aside. */
export function multiKrumMinimum(byzantine: number, select: number): number {
  return Math.max(krumMinimum(byzantine), select + byzantine);
}

/**
 * The candidates (indices into the n × n `distances`) ordered best first: by Krum score
 * among themselves, ties by index (the batch is in clientId order, so ties go to the lower
 * clientId). The score sums the m = |candidates| − f − 2 smallest distances to the other
 * candidates, at least 1 and at most all of them, as Flower clamps it for Bulyan's last picks.
 */
export function rankByKrum(distances: Float64Array, n: number, candidates: readonly number[], byzantine: number): number[] {
  const others = candidates.length - 1;
  const nearest = Math.min(others, Math.max(1, candidates.length - byzantine - 2));
  const row = new Float64Array(others);
  const scores = candidates.map((i) => {
    let k = 0;
    for (const j of candidates) if (j !== i) row[k++] = distances[i * n + j]!;
    row.sort();
    let score = 0;
    for (let m = 0; m < nearest; m++) score += row[m]!;
    return score;
  });
  return candidates.map((index, at) => ({ index, score: scores[at]! })).sort((a, b) => a.score - b.score || a.index - b.index).map((c) => c.index);
}

/** The batch in clientId order and its candidates ranked best first. */
function ranked(updates: readonly ClientUpdate[], minimum: number, byzantine: number, rule: 'krum' | 'multi-krum'): { batch: ClientUpdate[]; order: number[] } {
  const batch = checkBatch(rule, updates, minimum);
  const distances = pairwiseSquaredDistances(batch.map((u) => u.delta));
  return { batch, order: rankByKrum(distances, batch.length, batch.map((_, i) => i), byzantine) };
}

/** Krum: the one best-scored update, as it came (unweighted). */
export function krumRule(aggregation: Aggregation): CombineRule {
  const f = aggregation.byzantine;
  return {
    name: 'krum',
    combine(updates) {
      const { batch, order } = ranked(updates, krumMinimum(f), f, 'krum');
      const best = batch[order[0]!]!;
      return { delta: copyWeights(best.delta), discarded: batch.filter((u) => u !== best).map((u) => u.clientId) };
    },
  };
}

/** Multi-Krum: the sample-weighted mean of the `select` best-scored updates (0 = n − f). */
export function multiKrumRule(aggregation: Aggregation): CombineRule {
  const f = aggregation.byzantine;
  return {
    name: 'multi-krum',
    combine(updates) {
      const { batch, order } = ranked(updates, multiKrumMinimum(f, aggregation.select), f, 'multi-krum');
      const keep = aggregation.select > 0 ? aggregation.select : batch.length - f;
      const kept = new Set(order.slice(0, keep));
      const chosen = batch.filter((_, i) => kept.has(i));
      return {
        delta: weightedMean(chosen.map((u) => ({ delta: u.delta, weight: u.weight }))),
        discarded: batch.filter((_, i) => !kept.has(i)).map((u) => u.clientId),
      };
    },
  };
}
