import { addWeights, type Weights } from '../../shared/ml/aggregate.ts';
import type { Strategy } from './strategy.ts';

/** FedAvg (McMahan et al. 2017): move to the sample-weighted mean of the clients' models. */
export function fedAvg(): Strategy {
  return {
    name: 'fedavg',
    async step(global: Weights, meanDelta: Weights): Promise<Weights> {
      return addWeights(global, meanDelta);
    },
    state: () => [],
    restore() {},
  };
}
