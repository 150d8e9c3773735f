import { ADAPTIVE_DEFAULTS, adaptiveStrategy, type AdaptiveOptions } from './adaptive.ts';
import type { Strategy } from './strategy.ts';

/** FedAdam (Reddi et al. 2021): v ← β2·v + (1 − β2)·Δ². */
export function fedAdam(options: AdaptiveOptions = ADAPTIVE_DEFAULTS): Strategy {
  return adaptiveStrategy('fedadam', (v, squared, beta2) => beta2 * v + (1 - beta2) * squared, options);
}
