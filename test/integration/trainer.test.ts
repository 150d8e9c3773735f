import { describe, expect, it } from 'vitest';
import { preferredBackends } from '../../client/backend.ts';
import { activateNodeBackend } from '../../client/node/tf.ts';
import { loadDemoShard } from '../../client/node/demo-data.ts';
import { Trainer } from '../../client/trainer.ts';
import { buildModel, readWeights } from '../../shared/ml/models.ts';
import { DEFAULT_MODELS } from '../../shared/ml/model-spec.ts';
import { withTaskDefaults, type TaskSpec } from '../../shared/protocol/task.ts';

const initialWeights = async (spec: TaskSpec) => readWeights(await buildModel(spec.model, spec.data, 1));

describe('local training on Node backends', () => {
  it('picks WASM for the MLP and CPU for the CNN, whose filter gradient WASM lacks', () => {
    expect(preferredBackends('node', DEFAULT_MODELS.mlp)).toEqual(['wasm', 'cpu']);
    expect(preferredBackends('node', DEFAULT_MODELS.cnn)).toEqual(['cpu']);
  });

  // The CNN trains on the (slow) CPU backend, whose convolution gradients take ~8 s for a batch of 32 here: it gets 16 samples.
  it.each<['mlp' | 'cnn', string, number]>([['mlp', 'wasm', 600], ['cnn', 'cpu', 16]])(
    'trains the %s on %s: same seed gives the same weights, and training lowers the loss',
    async (kind, backend, samples) => {
      const spec = withTaskDefaults({ name: 't', model: DEFAULT_MODELS[kind], trainLimit: samples, shards: 1 });
      expect(await activateNodeBackend(spec.model)).toBe(backend);
      const data = await loadDemoShard(spec, 0);
      expect(data.n).toBe(samples);
      const global = await initialWeights(spec);
      const trainer = await Trainer.create(spec, 1);
      const first = await trainer.train(global, data, spec.hyper, 42);
      const repeat = await trainer.train(global, data, spec.hyper, 42);
      expect(repeat.weights).toEqual(first.weights);
      const second = await trainer.train(first.weights, data, spec.hyper, 43);
      expect(second.loss).toBeLessThan(first.loss);
      expect(first.samples).toBe(samples);
      expect(first.metrics.accuracy).toBeGreaterThanOrEqual(0);
      trainer.dispose();
    },
  );

  it('gives the event loop a turn whenever 50 ms of training have passed, so heartbeats and acks are not starved', async () => {
    const spec = withTaskDefaults({ name: 't', trainLimit: 2_000, shards: 1 });
    await activateNodeBackend(spec.model);
    const data = await loadDemoShard(spec, 0);
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
    const global = await initialWeights(spec);
    // A clock that moves 30 ms at each reading: the trainer reads it once a step (and once
    // more after yielding), so more than 50 ms has passed at every second step.
    let t = 0;
    const ticking = await Trainer.create(spec, 1, 1, () => (t += 30));
    const yielding = await turnsDuring(() => ticking.train(global, data, hyper, 42));
    expect(yielding).toBeGreaterThanOrEqual(Math.floor(steps / 2));
    // The control: with a clock that never moves, training never yields.
    const frozen = await Trainer.create(spec, 1, 1, () => 0);
    const starving = await turnsDuring(() => frozen.train(global, data, hyper, 42));
    expect(starving).toBe(0);
    ticking.dispose();
    frozen.dispose();
  });

  it('FedProx: the proximal term keeps the local model closer to the global one', async () => {
    const spec = withTaskDefaults({ name: 't', trainLimit: 600, shards: 1 });
    await activateNodeBackend(spec.model);
    const data = await loadDemoShard(spec, 0);
    const global = await initialWeights(spec);
    const distance = (w: Float32Array[]) => w.reduce((s, t, i) => s + t.reduce((a, v, j) => a + (v - global[i]![j]!) ** 2, 0), 0);
    const trainer = await Trainer.create(spec, 1);
    const free = await trainer.train(global, data, spec.hyper, 42);
    const proximal = await trainer.train(global, data, { ...spec.hyper, proximalMu: 1 }, 42);
    expect(distance(proximal.weights)).toBeLessThan(0.8 * distance(free.weights));
    expect(Number.isFinite(proximal.loss)).toBe(true);
    trainer.dispose();
  });
});
