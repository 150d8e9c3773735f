import type { Weights } from '../shared/aggregate.ts';
import type { LabelledSet } from '../shared/dataset.ts';
import { PRESETS } from '../shared/models.ts';
import { createRng } from '../shared/random.ts';
import type { Hyper, ModelPreset } from '../shared/task.ts';
import { Trainer } from './trainer.ts';

/**
 * Short seeded training runs on the active backend, the same numbers everywhere: how fast
 * this device trains the task's model (what it reports to the scheduler), and a first
 * step to compare one backend's arithmetic with another's.
 */

export const PROBE_HYPER: Hyper = { localEpochs: 1, batchSize: 64, learningRate: 0.1, optimizer: 'sgd', proximalMu: 0 };

/** `n` seeded samples of the preset's input shape. */
export function probeBatch(preset: ModelPreset, n: number): LabelledSet {
  const { inputShape, numClasses } = PRESETS[preset];
  const features = inputShape.reduce((a, b) => a * b, 1);
  const rng = createRng(7);
  return {
    x: Float32Array.from({ length: n * features }, () => rng.next()),
    y: Int32Array.from({ length: n }, () => rng.nextUint32() % numClasses),
    n,
    features,
  };
}

/**
 * Small seeded weights to start from, made on the CPU side rather than read from a built
 * model: WebGPU in Node can read tensors back only asynchronously.
 */
export function probeWeights(lengths: readonly number[]): Weights {
  const rng = createRng(8);
  return lengths.map((n) => Float32Array.from({ length: n }, () => (rng.next() - 0.5) * 0.1));
}

/** The weights after one training step from the probe weights on a 32-sample batch. */
export async function probeStep(preset: ModelPreset): Promise<Weights> {
  const trainer = new Trainer(preset, 7);
  try {
    return (await trainer.train(probeWeights(trainer.weightLengths), probeBatch(preset, 32), { ...PROBE_HYPER, batchSize: 32 }, 1)).weights;
  } finally {
    trainer.dispose();
  }
}

/**
 * Samples per second on the active backend, over two warm passes of four steps. The first
 * pass is left out: on WebGPU it compiles the shaders, which real training then reuses.
 */
export async function measureThroughput(preset: ModelPreset): Promise<number> {
  const trainer = new Trainer(preset, 7);
  const batch = probeBatch(preset, 4 * PROBE_HYPER.batchSize);
  const global = probeWeights(trainer.weightLengths);
  try {
    await trainer.train(global, batch, PROBE_HYPER, 1);
    const passes = 2;
    const started = performance.now();
    for (let i = 0; i < passes; i++) await trainer.train(global, batch, PROBE_HYPER, 1);
    return (passes * batch.n) / ((performance.now() - started) / 1000);
  } finally {
    trainer.dispose();
  }
}
