import type { Weights } from '../shared/ml/aggregate.ts';
import type { LabelledSet } from '../shared/data/dataset.ts';
import { featureCount, outputUnitsOf, targetOf, vocabularySize } from '../shared/data/schema.ts';
import { createRng } from '../shared/random.ts';
import type { Hyper, TaskModel } from '../shared/protocol/task.ts';
import { Trainer } from './trainer.ts';

/**
 * Short seeded training runs on the active backend, the same numbers everywhere: how fast
 * this device trains the task's model (what it reports to the scheduler), and a first
 * step to compare one backend's arithmetic with another's.
 */

export const PROBE_HYPER: Hyper = { localEpochs: 1, batchSize: 64, learningRate: 0.1, optimizer: 'sgd', proximalMu: 0 };

/** `n` seeded samples the task's schema allows: features in [0, 1] (token ids for text) and labels of its target. */
export function probeBatch(task: TaskModel, n: number): LabelledSet {
  const schema = task.data;
  const features = featureCount(schema);
  const rng = createRng(7);
  const tokens = schema.kind === 'text' ? vocabularySize(schema) : 0;
  const x = Float32Array.from({ length: n * features }, () => (tokens ? rng.nextUint32() % tokens : rng.next()));
  const target = targetOf(schema);
  const classes = target === 'binary' ? 2 : outputUnitsOf(schema);
  const y = target === 'regression' ? Float32Array.from({ length: n }, () => rng.next()) : Int32Array.from({ length: n }, () => rng.nextUint32() % classes);
  return { x, y, n, features };
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
export async function probeStep(task: TaskModel): Promise<Weights> {
  const trainer = await Trainer.create(task, 7);
  try {
    return (await trainer.train(probeWeights(trainer.weightLengths), probeBatch(task, 32), { ...PROBE_HYPER, batchSize: 32 }, 1)).weights;
  } finally {
    trainer.dispose();
  }
}

/** The probe's timed steps stop once they have run this long (or after MAX_STEPS): a few seconds at most, even for a CNN on a CPU. */
const PROBE_MS = 400;
const MAX_STEPS = 8;

/**
 * Samples per second on the active backend (at the trainer's throttle, as it will train).
 * The first step is left out: on WebGPU it compiles the shaders, which real training then reuses.
 */
export async function measureThroughput(task: TaskModel, throttle = 1): Promise<number> {
  const trainer = await Trainer.create(task, 7, throttle);
  const batch = probeBatch(task, PROBE_HYPER.batchSize);
  const global = probeWeights(trainer.weightLengths);
  try {
    await trainer.train(global, batch, PROBE_HYPER, 1);
    const started = performance.now();
    let steps = 0;
    while (steps < MAX_STEPS && (steps === 0 || performance.now() - started < PROBE_MS)) {
      await trainer.train(global, batch, PROBE_HYPER, 1);
      steps++;
    }
    return (steps * batch.n) / ((performance.now() - started) / 1000);
  } finally {
    trainer.dispose();
  }
}
