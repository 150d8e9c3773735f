import * as tf from '@tensorflow/tfjs-core';
import { TributaryError } from '../shared/errors.ts';
import { trainsOnWasm } from '../shared/ml/models.ts';
import type { ModelSpec } from '../shared/ml/model-spec.ts';

/** Backends worth trying, best first, for a runtime and a model. */
export function preferredBackends(runtime: 'browser' | 'node', model: ModelSpec): string[] {
  if (runtime === 'browser') return ['webgpu', 'webgl', 'wasm', 'cpu'];
  // tfjs-backend-wasm lacks the Conv2DBackpropFilter and UnsortedSegmentSum kernels: CNNs and embeddings cannot train on it.
  return trainsOnWasm(model) ? ['wasm', 'cpu'] : ['cpu'];
}

/** The activation in progress: TF.js's engine is one per page or process, and two setBackend calls at once leave it half switched. */
let activating: Promise<unknown> = Promise.resolve();

/**
 * Activates the first backend that is registered and starts. A forced backend that
 * cannot start is an error rather than a silent fall-back. Calls take turns: clients
 * sharing a process (the SDK embedded twice, or many in one test) each get a started one.
 */
export function activateBackend(candidates: readonly string[], forced?: string): Promise<string> {
  const next = activating.then(() => activateFirst(candidates, forced));
  activating = next.catch(() => {});
  return next;
}

async function activateFirst(candidates: readonly string[], forced?: string): Promise<string> {
  const order = forced && forced !== 'auto' ? [forced] : candidates;
  for (const name of order) {
    if (!tf.findBackendFactory(name)) continue;
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        return name;
      }
    } catch {
      // not available here; try the next one
    }
  }
  throw new TributaryError('BACKEND_UNAVAILABLE', order.join(', '));
}
