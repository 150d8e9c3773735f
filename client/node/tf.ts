import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { activateBackend, preferredBackends } from '../backend.ts';
import type { ModelSpec } from '../../shared/ml/model-spec.ts';

/** Picks the Node backend for a model: WASM for dense models, CPU for CNNs or as fall-back. */
export function activateNodeBackend(model: ModelSpec, forced?: string): Promise<string> {
  return activateBackend(preferredBackends('node', model), forced);
}
