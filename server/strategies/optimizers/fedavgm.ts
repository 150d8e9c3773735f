import type { Weights } from '../../../shared/ml/aggregate.ts';
import type { ServerOptimizer } from '../strategy.ts';

export interface FedAvgMOptions {
  /** Server learning rate η. */
  learningRate: number;
  /** Server momentum β. */
  momentum: number;
}

/**
 * FedAvgM (Hsu et al. 2019): server momentum on the mean update.
 * v ← β·v + Δ;  x ← x + η·v.
 */
export function fedAvgM({ learningRate, momentum }: FedAvgMOptions = { learningRate: 1, momentum: 0.5 }): ServerOptimizer {
  let velocity: Weights | undefined;
  return {
    name: 'fedavgm',
    async step(global, meanDelta) {
      velocity ??= meanDelta.map((d) => new Float32Array(d.length));
      return global.map((x, t) => {
        const v = velocity![t]!;
        const d = meanDelta[t]!;
        const out = new Float32Array(x.length);
        for (let i = 0; i < x.length; i++) {
          v[i] = momentum * v[i]! + d[i]!;
          out[i] = x[i]! + learningRate * v[i]!;
        }
        return out;
      });
    },
    state: () => velocity ?? [],
    restore(state) {
      velocity = state.length ? state.map((t) => Float32Array.from(t)) : undefined;
    },
  };
}
