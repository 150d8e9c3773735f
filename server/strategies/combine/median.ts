import type { CombineRule } from '../strategy.ts';
import { checkBatch, reduceCoordinates, sortedMedian } from './batch.ts';

/**
 * Coordinate-wise median (Yin et al. 2018; Flower's FedMedian): every coordinate of the step
 * is the median of the updates' values there, the mean of the middle two for an even count.
 * Unweighted: a weight is what a client claims, and a robust rule must not let one claim
 * buy a larger say. Discards nobody (each coordinate may come from a different client).
 */
export function medianRule(): CombineRule {
  return {
    name: 'median',
    combine(updates) {
      const batch = checkBatch('median', updates, 1);
      return { delta: reduceCoordinates(batch.map((u) => u.delta), sortedMedian), discarded: [] };
    },
  };
}
