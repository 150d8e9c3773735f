import { weightedMean } from '../../../shared/ml/aggregate.ts';
import { RunningSum } from '../../../shared/ml/running-sum.ts';
import type { CombineRule, UpdateFold } from '../strategy.ts';

/** FedAvg's combine: the sample-weighted mean. Discards nobody, and streams: a round needs only the running sum. */
export function meanRule(): CombineRule {
  return {
    name: 'mean',
    combine: (updates) => ({ delta: weightedMean(updates.map((u) => ({ delta: u.delta, weight: u.weight }))), discarded: [] }),
    fold: (lengths) => meanFold(new RunningSum(lengths)),
  };
}

function meanFold(sum: RunningSum): UpdateFold {
  return {
    add: (u) => sum.add(u.delta, u.weight),
    addEncoded: (bytes, bits, weight) => sum.addEncoded(bytes, bits, weight),
    get count() {
      return sum.count;
    },
    finish: () => ({ delta: sum.mean(), discarded: [] }),
  };
}
