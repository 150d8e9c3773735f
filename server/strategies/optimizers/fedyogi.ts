import { ADAPTIVE_DEFAULTS, adaptiveStrategy, type AdaptiveOptions } from './adaptive.ts';
import type { Strategy } from './strategy.ts';

/**
 * FedYogi (Reddi et al. 2021): v ← v − (1 − β2)·Δ²·sign(v − Δ²). v moves towards Δ² by an
 * additive step, so it grows slowly when updates shrink: steadier than Adam on noisy rounds.
 */
export function fedYogi(options: AdaptiveOptions = ADAPTIVE_DEFAULTS): Strategy {
  return adaptiveStrategy('fedyogi', (v, squared, beta2) => v - (1 - beta2) * squared * Math.sign(v - squared), options);
}
