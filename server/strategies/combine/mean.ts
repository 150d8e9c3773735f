import { weightedMean } from '../../../shared/ml/aggregate.ts';
import type { CombineRule } from '../strategy.ts';

/** FedAvg's combine: the sample-weighted mean. Discards nobody. */
export function meanRule(): CombineRule {
  return {
    name: 'mean',
    combine: (updates) => ({ delta: weightedMean(updates.map((u) => ({ delta: u.delta, weight: u.weight }))), discarded: [] }),
  };
}
