import { ADAPTIVE_DEFAULTS, adaptiveOptimizer, type AdaptiveOptions } from './adaptive.ts';
import type { ServerOptimizer } from '../strategy.ts';

/** FedAdam (Reddi et al. 2021): v ← β2·v + (1 − β2)·Δ². */
export function fedAdam(options: AdaptiveOptions = ADAPTIVE_DEFAULTS): ServerOptimizer {
  return adaptiveOptimizer('fedadam', (v, squared, beta2) => beta2 * v + (1 - beta2) * squared, options);
}
