import type { Aggregation } from '../../../shared/protocol/task.ts';
import type { CombineRule } from '../strategy.ts';
import { checkBatch, reduceCoordinates } from './batch.ts';

/**
 * How many values each end of a coordinate loses: ⌊β·n⌋, read through float noise
 * (0.29 · 100 is 28.999999999999996 in binary, and means 29), and never so many that
 * nothing is left.
 */
export function trimCount(trim: number, n: number): number {
  if (!(trim > 0)) return 0;
  return Math.max(0, Math.min(Math.floor(trim * n + 1e-9), Math.floor((n - 1) / 2)));
}

/**
 * Coordinate-wise trimmed mean (Yin et al. 2018): every coordinate drops its ⌊β·n⌋ lowest
 * and ⌊β·n⌋ highest values and averages the rest, unweighted (as the median). With
 * β < 0.5 something is always left, so one update is enough; but a round of fewer than
 * 1/β updates trims nothing and is the plain mean.
 */
export function trimmedMeanRule(aggregation: Aggregation): CombineRule {
  return {
    name: 'trimmed-mean',
    combine(updates) {
      const batch = checkBatch('trimmed-mean', updates, 1);
      const n = batch.length;
      const cut = trimCount(aggregation.trim, n);
      const delta = reduceCoordinates(
        batch.map((u) => u.delta),
        (sorted) => {
          let sum = 0;
          for (let k = cut; k < n - cut; k++) sum += sorted[k]!;
          return sum / (n - 2 * cut);
        },
      );
      return { delta, discarded: [] };
    },
  };
}
