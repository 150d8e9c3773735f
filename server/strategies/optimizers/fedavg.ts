import { addWeights, type Weights } from '../../../shared/ml/aggregate.ts';
import type { ServerOptimizer } from '../strategy.ts';

/** FedAvg (McMahan et al. 2017): move to the sample-weighted mean of the clients' models. */
export function fedAvg(): ServerOptimizer {
  return {
    name: 'fedavg',
    async step(global: Weights, meanDelta: Weights): Promise<Weights> {
      return addWeights(global, meanDelta);
    },
    state: () => [],
    restore() {},
  };
}
