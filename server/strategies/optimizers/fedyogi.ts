import { ADAPTIVE_DEFAULTS, adaptiveOptimizer, type AdaptiveOptions } from './adaptive.ts';
import type { ServerOptimizer } from '../strategy.ts';

/**
 * FedYogi (Reddi et al. 2021): v ← v − (1 − β2)·Δ²·sign(v − Δ²). v moves towards Δ² by an
 * additive step, so it grows slowly when updates shrink: steadier than Adam on noisy rounds.
 */
export function fedYogi(options: AdaptiveOptions = ADAPTIVE_DEFAULTS): ServerOptimizer {
  return adaptiveOptimizer('fedyogi', (v, squared, beta2) => v - (1 - beta2) * squared * Math.sign(v - squared), options);
}
