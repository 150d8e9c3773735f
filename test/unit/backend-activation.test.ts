import * as tf from '@tensorflow/tfjs-core';
import { expect, it } from 'vitest';
import { activateNodeBackend } from '../../client/node/tf.ts';

// Clients sharing a process start at once: before activations took turns, five of six
// concurrent calls fell back to 'cpu' while the engine was mid-switch to 'wasm'.
it('gives every concurrent caller the one backend the engine ends up on', async () => {
  const names = await Promise.all(Array.from({ length: 6 }, () => activateNodeBackend({ kind: 'mlp', hidden: [8] })));
  expect(new Set(names)).toEqual(new Set(['wasm']));
  expect(tf.getBackend()).toBe('wasm');
});
