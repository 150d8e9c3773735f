import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';

/**
 * The server only evaluates (forward passes), which the WASM backend does fast for both
 * presets; CPU is the fallback where WASM cannot start.
 */
export async function initServerBackend(): Promise<string> {
  for (const name of ['wasm', 'cpu']) {
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        return name;
      }
    } catch {
      // try the next backend
    }
  }
  throw new Error('no TensorFlow.js backend could start');
}
