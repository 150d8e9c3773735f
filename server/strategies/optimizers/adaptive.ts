import type { Weights } from '../../../shared/ml/aggregate.ts';
import type { StrategyName } from '../../../shared/protocol/task.ts';
import type { ServerOptimizer } from '../strategy.ts';

/** Hyper-parameters of the adaptive server optimizers (Reddi et al. 2021, Algorithm 2). */
export interface AdaptiveOptions {
  /** Server learning rate η. */
  learningRate: number;
  beta1: number;
  beta2: number;
  /** τ: the adaptivity floor; v starts at τ². */
  tau: number;
}

export const ADAPTIVE_DEFAULTS: AdaptiveOptions = { learningRate: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3 };

/** The second-moment rule that tells FedAdam, FedYogi (and FedAdagrad) apart: v_t from v_{t−1} and Δ². */
export type SecondMoment = (v: number, squared: number, beta2: number) => number;

/**
 * m ← β1·m + (1 − β1)·Δ;  v ← rule(v, Δ²);  x ← x + η·m / (√v + τ).
 * Δ is the round's mean update (the negative pseudo-gradient), so the step adds.
 */
export function adaptiveOptimizer(name: StrategyName, secondMoment: SecondMoment, options: AdaptiveOptions): ServerOptimizer {
  const { learningRate, beta1, beta2, tau } = options;
  let m: Weights | undefined;
  let v: Weights | undefined;
  return {
    name,
    async step(global, meanDelta) {
      m ??= meanDelta.map((d) => new Float32Array(d.length));
      v ??= meanDelta.map((d) => new Float32Array(d.length).fill(tau * tau));
      return global.map((x, t) => {
        const mt = m![t]!;
        const vt = v![t]!;
        const d = meanDelta[t]!;
        const out = new Float32Array(x.length);
        for (let i = 0; i < x.length; i++) {
          const g = d[i]!;
          mt[i] = beta1 * mt[i]! + (1 - beta1) * g;
          vt[i] = secondMoment(vt[i]!, g * g, beta2);
          out[i] = x[i]! + (learningRate * mt[i]!) / (Math.sqrt(vt[i]!) + tau);
        }
        return out;
      });
    },
    state: () => (m && v ? [...m, ...v] : []),
    restore(state) {
      const half = state.length / 2;
      m = half ? state.slice(0, half).map((t) => Float32Array.from(t)) : undefined;
      v = half ? state.slice(half).map((t) => Float32Array.from(t)) : undefined;
    },
  };
}
