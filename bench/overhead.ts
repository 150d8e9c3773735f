import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { activateNodeBackend } from '../client/node/tf.ts';
import { Trainer } from '../client/trainer.ts';
import { encodeUpdate } from '../shared/codec/update-codec.ts';
import { cryptoReady, generateBoxKeyPair, seal } from '../shared/crypto/sodium.ts';
import type { BuiltinName } from '../shared/data/builtin.ts';
import type { LabelledSet } from '../shared/data/dataset.ts';
import type { Target } from '../shared/data/schema.ts';
import { subtractWeights, type Weights } from '../shared/ml/aggregate.ts';
import { modelInput, tensorsOf } from '../shared/ml/evaluate.ts';
import { buildModel, readWeights } from '../shared/ml/models.ts';
import { objectiveOf } from '../shared/ml/objective.ts';
import type { Hyper, LocalOptimizer, TaskSpec } from '../shared/protocol/task.ts';
import { createRng, deriveSeed } from '../shared/random.ts';
import type { BenchOptions } from './options.ts';
import { table } from './report.ts';
import { benchSpec, loadTaskData } from './task-data.ts';
import { DEFAULT_LIMITS, parseTasks, type TasksOptions } from './tasks.ts';

/**
 * The SDK's cost over plain TF.js: a client's local round as the SDK runs it
 * (`Trainer.train` on its shard, the delta, `encodeUpdate` at 8 bits with its residual,
 * `seal`) against `model.compile` + `model.fit` of the same model on the same backend and
 * rows (same batch size, epochs, optimizer and rate, shuffled every epoch). Both start from
 * the same global weights. The two alternate (ABBA order, so drift and other jobs' noise
 * hit both) after a warm-up of each; the medians are compared.
 */

export interface OverheadSettings {
  tasks: readonly BuiltinName[];
  /** Timed rounds of each (after one warm-up each). */
  repetitions: number;
  seed: number;
  /** The SDK's round may take this fraction longer than raw TF.js. */
  targetRatio: number;
}

export function defaultSettings(options: TasksOptions): OverheadSettings {
  return { tasks: parseTasks(options.tasks), repetitions: 15, seed: 1, targetRatio: 1.05 };
}

export async function run(options: TasksOptions): Promise<void> {
  await runOverhead(options, defaultSettings(options));
}

/** What `model.compile` is given for each objective: the Keras loss the Trainer's own loss matches. */
const RAW_LOSS: Record<Target, { loss: string; metrics: string[] }> = {
  multiclass: { loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] },
  'next-token': { loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] },
  binary: { loss: 'binaryCrossentropy', metrics: ['accuracy'] },
  regression: { loss: 'meanSquaredError', metrics: [] },
};

/** The Trainer's local optimizers (client/trainer.ts), by the same settings. */
const RAW_OPTIMIZER: Record<LocalOptimizer, (rate: number) => tf.Optimizer> = {
  sgd: (rate) => tf.train.sgd(rate),
  momentum: (rate) => tf.train.momentum(rate, 0.9),
  adam: (rate) => tf.train.adam(rate),
};

/** Wall-clock time, and CPU time of this process (the benchmark runs on one thread: shared cores slow the first, hardly the second). */
interface Timing {
  wallMs: number;
  cpuMs: number;
}

async function timed<T>(work: () => Promise<T>): Promise<Timing & { result: T }> {
  const [wall, cpu] = [performance.now(), process.cpuUsage()];
  const result = await work();
  const used = process.cpuUsage(cpu);
  return { wallMs: performance.now() - wall, cpuMs: (used.user + used.system) / 1000, result };
}

interface SdkTiming extends Timing {
  trainMs: number;
  encodeMs: number;
  sealMs: number;
}

/** A client's plain round through the SDK's path; the residual and rounding stream carry over, as RoundRunner's do. */
function sdkRound(spec: TaskSpec, trainer: Trainer, set: LabelledSet, global: Weights): (round: number) => Promise<SdkTiming> {
  const residual = global.map((t) => new Float32Array(t.length));
  const rng = createRng(deriveSeed('overhead-rounding', spec.seed));
  const aggregator = generateBoxKeyPair();
  return async (round) => {
    const { result, ...timing } = await timed(async () => {
      const t0 = performance.now();
      const trained = await trainer.train(global, set, spec.hyper, deriveSeed('overhead-train', spec.seed, round));
      const t1 = performance.now();
      const encoded = encodeUpdate(subtractWeights(trained.weights, global), { bits: 8, clipSigma: spec.clipSigma, rng, residual });
      const t2 = performance.now();
      seal(encoded, aggregator.publicKey);
      return { trainMs: t1 - t0, encodeMs: t2 - t1, sealMs: performance.now() - t2 };
    });
    return { ...timing, ...result };
  };
}

/** The same round in plain TF.js: set the weights, compile with a fresh optimizer, fit. */
function rawRound(spec: TaskSpec, model: tfl.LayersModel, set: LabelledSet, global: Weights): { round: () => Promise<Timing>; dispose: () => void } {
  const { x, y } = tensorsOf(set, objectiveOf(spec.data).labelDtype);
  const input = modelInput(spec.data, x);
  const labels = tf.cast(y, 'float32');
  tf.dispose([x, y]);
  const start = model.getWeights().map((w, i) => tf.tensor(global[i]!, w.shape));
  const { loss, metrics } = RAW_LOSS[objectiveOf(spec.data).target];
  const hyper: Hyper = spec.hyper;
  return {
    round: async () => {
      const optimizer = RAW_OPTIMIZER[hyper.optimizer](hyper.learningRate);
      const { wallMs, cpuMs } = await timed(async () => {
        model.setWeights(start);
        model.compile({ optimizer, loss, metrics });
        await model.fit(input, labels, { batchSize: hyper.batchSize, epochs: hyper.localEpochs, shuffle: true, verbose: 0 });
      });
      optimizer.dispose();
      return { wallMs, cpuMs };
    },
    dispose: () => tf.dispose([input, labels, ...start]),
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export interface OverheadResult {
  task: BuiltinName;
  model: string;
  backend: string;
  rows: number;
  parameters: number;
  hyper: Hyper;
  sdk: SdkTiming[];
  raw: Timing[];
}

async function measure(options: BenchOptions, settings: OverheadSettings, task: BuiltinName): Promise<OverheadResult> {
  const spec = benchSpec(task, options.clients, 1, settings.seed);
  const backend = await activateNodeBackend(spec.model);
  // Client 0's shard as `bench tasks` trains it.
  const set = (await loadTaskData(task, spec, DEFAULT_LIMITS[task])).shards[0]!;
  const model = await buildModel(spec.model, spec.data, spec.seed);
  const global = readWeights(model);
  const trainer = await Trainer.create(spec, spec.seed);
  const sdk = sdkRound(spec, trainer, set, global);
  const raw = rawRound(spec, model, set, global);
  try {
    await sdk(0);
    await raw.round();
    const result: OverheadResult = { task, model: spec.model.kind, backend, rows: set.n, parameters: global.reduce((a, t) => a + t.length, 0), hyper: spec.hyper, sdk: [], raw: [] };
    for (let i = 1; i <= settings.repetitions; i++) {
      // ABBA: SDK first in odd pairs, raw first in even ones.
      if (i % 2 === 0) result.raw.push(await raw.round());
      result.sdk.push(await sdk(i));
      if (i % 2 === 1) result.raw.push(await raw.round());
      const [a, b] = [result.sdk.at(-1)!, result.raw.at(-1)!];
      process.stderr.write(`  ${task}: pair ${i}/${settings.repetitions}: SDK ${a.wallMs.toFixed(0)} ms (CPU ${a.cpuMs.toFixed(0)}), raw ${b.wallMs.toFixed(0)} ms (CPU ${b.cpuMs.toFixed(0)})\n`);
    }
    return result;
  } finally {
    raw.dispose();
    trainer.dispose();
    model.dispose();
  }
}

export async function runOverhead(options: BenchOptions, settings: OverheadSettings): Promise<void> {
  const started = performance.now();
  await cryptoReady();
  process.stderr.write(`overhead: ${settings.tasks.join(', ')}; ${settings.repetitions} alternating rounds of each after a warm-up…\n`);
  const results: OverheadResult[] = [];
  for (const task of settings.tasks) results.push(await measure(options, settings, task));
  const ratioOf = (of: (t: Timing) => number) => (r: OverheadResult) => median(r.sdk.map(of)) / median(r.raw.map(of));
  const [wallRatio, cpuRatio] = [ratioOf((t) => t.wallMs), ratioOf((t) => t.cpuMs)];
  const verdict = (ratio: number) => `${ratio.toFixed(3)} ${ratio <= settings.targetRatio ? 'met' : 'MISSED'}`;
  const rows = results.map((r) => {
    const part = (of: (t: SdkTiming) => number) => median(r.sdk.map(of)).toFixed(1);
    const both = (timings: readonly Timing[]) => `${median(timings.map((t) => t.wallMs)).toFixed(0)} / ${median(timings.map((t) => t.cpuMs)).toFixed(0)}`;
    return [
      r.task,
      `${r.model} (${r.parameters.toLocaleString('en')})`,
      r.backend,
      `${r.rows} × ${r.hyper.localEpochs}, batch ${r.hyper.batchSize}, ${r.hyper.optimizer}`,
      both(r.sdk),
      `${part((t) => t.trainMs)} + ${part((t) => t.encodeMs)} + ${part((t) => t.sealMs)}`,
      both(r.raw),
      verdict(wallRatio(r)),
      verdict(cpuRatio(r)),
    ];
  });
  const target = settings.targetRatio;
  const headers = ['task', 'model (params)', 'backend', 'rows × epochs', 'SDK ms wall / CPU', 'SDK train + encode + seal ms', 'raw fit ms wall / CPU', `wall SDK/raw ≤ ${target}`, `CPU SDK/raw ≤ ${target}`];
  const lines = [
    `SDK overhead: one local round of client 0's shard (as bench tasks cuts it), SDK (Trainer.train + delta + 8-bit encodeUpdate + seal) against TF.js model.compile + model.fit`,
    `(same model, backend, rows, batch size, epochs, optimizer and rate; shuffled each epoch), alternating ABBA, medians of ${settings.repetitions} each after a warm-up of each;`,
    'CPU: this process\'s CPU time over the round (one thread), which other jobs on shared cores barely change; wall includes the time they take.',
    '',
    table(headers, rows),
    '',
    `Wall time: ${((performance.now() - started) / 1000).toFixed(0)} s, one thread.`,
  ];
  console.log(`\n${lines.join('\n')}`);
  await mkdir(options.out, { recursive: true });
  const json = join(options.out, 'overhead.json');
  await writeFile(json, JSON.stringify({ settings, results }, null, 2));
  console.log(`\nraw results: ${json}`);
}
