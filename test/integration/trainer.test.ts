import { describe, expect, it } from 'vitest';
import { preferredBackends } from '../../client/backend.ts';
import { activateNodeBackend } from '../../client/node/tf.ts';
import { loadDemoShard } from '../../client/node/fashion-mnist.ts';
import { Trainer } from '../../client/trainer.ts';
import { buildModel, readWeights } from '../../shared/ml/models.ts';
import { withTaskDefaults, type ModelPreset } from '../../shared/protocol/task.ts';
import { FASHION_MNIST_DIR } from '../../shared/data/fashion-mnist.ts';

describe('local training on Node backends', () => {
  it('picks WASM for the MLP and CPU for the CNN, whose filter gradient WASM lacks', () => {
    expect(preferredBackends('node', 'fmnist-mlp')).toEqual(['wasm', 'cpu']);
    expect(preferredBackends('node', 'fmnist-cnn')).toEqual(['cpu']);
  });

  // The CNN trains on the (slow) CPU backend, so it gets fewer samples.
  it.each<[ModelPreset, string, number]>([['fmnist-mlp', 'wasm', 600], ['fmnist-cnn', 'cpu', 32]])(
    'trains %s on %s: same seed gives the same weights, and training lowers the loss',
    async (preset, backend, samples) => {
      expect(await activateNodeBackend(preset)).toBe(backend);
      const spec = withTaskDefaults({ name: 't', model: preset, trainLimit: samples, shards: 1 });
      const data = await loadDemoShard(FASHION_MNIST_DIR, spec, 0);
      expect(data.n).toBe(samples);
      const global = readWeights(buildModel(preset, 1));
      const trainer = new Trainer(preset, 1);
      const first = await trainer.train(global, data, spec.hyper, 42);
      const repeat = await trainer.train(global, data, spec.hyper, 42);
      expect(repeat.weights).toEqual(first.weights);
      const second = await trainer.train(first.weights, data, spec.hyper, 43);
      expect(second.loss).toBeLessThan(first.loss);
      expect(first.samples).toBe(samples);
      trainer.dispose();
    },
  );

  it('gives the event loop a turn whenever 50 ms of training have passed, so heartbeats and acks are not starved', async () => {
    await activateNodeBackend('fmnist-mlp');
    const spec = withTaskDefaults({ name: 't', trainLimit: 2_000, shards: 1 });
    const data = await loadDemoShard(FASHION_MNIST_DIR, spec, 0);
    const hyper = { ...spec.hyper, batchSize: 16 };
    const steps = Math.ceil(2_000 / 16);
    /** Macrotask turns the event loop takes while `work` runs (an immediate re-arms itself every turn). */
    async function turnsDuring(work: () => Promise<unknown>): Promise<number> {
      let turns = 0;
      let handle = setImmediate(function tick() {
        turns++;
        handle = setImmediate(tick);
      });
      await work();
      clearImmediate(handle);
      return turns;
    }
    // A clock that moves 30 ms at each reading: the trainer reads it once a step (and once
    // more after yielding), so more than 50 ms has passed at every second step.
    let t = 0;
    const ticking = new Trainer('fmnist-mlp', 1, 1, () => (t += 30));
    const yielding = await turnsDuring(() => ticking.train(readWeights(buildModel('fmnist-mlp', 1)), data, hyper, 42));
    expect(yielding).toBeGreaterThanOrEqual(Math.floor(steps / 2));
    // The control: with a clock that never moves, training never yields.
    const frozen = new Trainer('fmnist-mlp', 1, 1, () => 0);
    const starving = await turnsDuring(() => frozen.train(readWeights(buildModel('fmnist-mlp', 1)), data, hyper, 42));
    expect(starving).toBe(0);
    ticking.dispose();
    frozen.dispose();
  });

  it('FedProx: the proximal term keeps the local model closer to the global one', async () => {
    await activateNodeBackend('fmnist-mlp');
    const spec = withTaskDefaults({ name: 't', trainLimit: 600, shards: 1 });
    const data = await loadDemoShard(FASHION_MNIST_DIR, spec, 0);
    const global = readWeights(buildModel('fmnist-mlp', 1));
    const distance = (w: Float32Array[]) => w.reduce((s, t, i) => s + t.reduce((a, v, j) => a + (v - global[i]![j]!) ** 2, 0), 0);
    const trainer = new Trainer('fmnist-mlp', 1);
    const free = await trainer.train(global, data, spec.hyper, 42);
    const proximal = await trainer.train(global, data, { ...spec.hyper, proximalMu: 1 }, 42);
    expect(distance(proximal.weights)).toBeLessThan(0.8 * distance(free.weights));
    expect(Number.isFinite(proximal.loss)).toBe(true);
    trainer.dispose();
  });
});
