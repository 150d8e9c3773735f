import type { Aggregation } from '../../../shared/protocol/task.ts';
import type { CombineRule } from '../strategy.ts';
import { checkBatch, reduceCoordinates, sortedMedian } from './batch.ts';
import { pairwiseSquaredDistances } from './distances.ts';
import { rankByKrum } from './krum.ts';

/** Bulyan's guarantee needs n ≥ 4f + 3. */
export function bulyanMinimum(byzantine: number): number {
  return 4 * byzantine + 3;
}

/**
 * The mean of the `count` values of `sorted` closest to its median. They form a window
 * of the sorted values grown outwards from the middle; an exact tie goes to the side the
 * window has taken fewer from (the lower side if even), so ties leave it centred.
 */
export function meanNearMedian(sorted: Float64Array, count: number): number {
  const median = sortedMedian(sorted);
  const middle = sorted.length >> 1;
  let lo = middle;
  let hi = middle;
  for (let taken = 0; taken < count; taken++) {
    if (hi >= sorted.length) {
      lo--;
      continue;
    }
    if (lo <= 0) {
      hi++;
      continue;
    }
    const left = median - sorted[lo - 1]!;
    const right = sorted[hi]! - median;
    if (left < right || (left === right && middle - lo <= hi - middle)) lo--;
    else hi++;
  }
  let sum = 0;
  for (let k = lo; k < hi; k++) sum += sorted[k]!;
  return sum / count;
}

/**
 * Bulyan (El Mhamdi et al. 2018): Krum picks θ = n − 2f updates one at a time, each pick
 * leaving the pool (its scores recomputed over what is left, from distances computed once);
 * then every coordinate averages the β = θ − 2f picked values closest to their median.
 * Unweighted. The clients Krum never picked are discarded.
 */
export function bulyanRule(aggregation: Aggregation): CombineRule {
  const f = aggregation.byzantine;
  return {
    name: 'bulyan',
    combine(updates) {
      const batch = checkBatch('bulyan', updates, bulyanMinimum(f));
      const n = batch.length;
      const distances = pairwiseSquaredDistances(batch.map((u) => u.delta));
      const picks = n - 2 * f;
      const picked: number[] = [];
      let pool = batch.map((_, i) => i);
      while (picked.length < picks) {
        const best = rankByKrum(distances, n, pool, f)[0]!;
        picked.push(best);
        pool = pool.filter((i) => i !== best);
      }
      const keep = picks - 2 * f;
      const delta = reduceCoordinates(
        picked.map((i) => batch[i]!.delta),
        (sorted) => meanNearMedian(sorted, keep),
      );
      return { delta, discarded: pool.map((i) => batch[i]!.clientId) };
    },
  };
}
