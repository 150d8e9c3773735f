import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { Weights } from '../shared/ml/aggregate.ts';
import type { LabelledSet } from '../shared/data/dataset.ts';
import { buildModel, readWeightsAsync, weightLengths, writeWeights } from '../shared/ml/models.ts';
import { evaluationSums, finiteMetrics, modelInput, tensorsOf } from '../shared/ml/evaluate.ts';
import type { DataSchema } from '../shared/data/schema.ts';
import { objectiveOf, type Metrics, type Objective } from '../shared/ml/objective.ts';
import type { Hyper, TaskModel } from '../shared/protocol/task.ts';
import { createRng, shuffleInPlace } from '../shared/random.ts';

export interface TrainResult {
  weights: Weights;
  /** Distinct samples trained on (what FedAvg weights by). */
  samples: number;
  /** Sample visits: samples × epochs, or the budget. */
  processed: number;
  /** Mean training loss over the last epoch's worth of steps. */
  loss: number;
  /** The objective's scores over those steps (accuracy, AUC, MSE…). */
  metrics: Metrics;
  durationMs: number;
}

export type ProgressCallback = (fraction: number, loss: number) => void;

/** Longest stretch of training without giving the event loop a turn. */
const YIELD_EVERY_MS = 50;

/**
 * A macrotask turn: socket heartbeats, acks and (in browsers) rendering run here. Awaiting
 * a promise alone would not do, since microtasks never let I/O in.
 */
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const yieldToEventLoop = () => sleep(0);

function optimizer(hyper: Hyper): tf.Optimizer {
  switch (hyper.optimizer) {
    case 'adam':
      return tf.train.adam(hyper.learningRate);
    case 'momentum':
      return tf.train.momentum(hyper.learningRate, 0.9);
    default:
      return tf.train.sgd(hyper.learningRate);
  }
}

/**
 * Local training on whatever TF.js backend is active. The model and the data tensors
 * are built once and reused across rounds; each round starts from the global weights
 * with a fresh optimizer.
 */
export class Trainer {
  private data: { set: LabelledSet; x: tf.Tensor; y: tf.Tensor } | undefined;

  readonly weightLengths: number[];

  /**
   * @param throttle fraction of full speed to train at (0 < throttle ≤ 1): the trainer idles
   *   after each step, sparing a device's battery, or standing in for a slower device.
   * @param now the clock that decides when to yield to the event loop and report progress.
   */
  readonly objective: Objective;

  constructor(
    private readonly model: tfl.LayersModel,
    private readonly schema: DataSchema,
    private readonly throttle = 1,
    /** Reads the time for progress reports and yields; a test drives it to make yields deterministic. */
    private readonly now: () => number = Date.now,
  ) {
    if (!(throttle > 0 && throttle <= 1)) throw new Error(`throttle must be in (0, 1], got ${throttle}`);
    this.weightLengths = weightLengths(this.model);
    this.objective = objectiveOf(schema);
  }

  /** A trainer of the task's model, initialised from `seed` (training always starts from the global weights). */
  static async create(task: TaskModel, seed: number, throttle = 1, now: () => number = Date.now): Promise<Trainer> {
    return new Trainer(await buildModel(task.model, task.data, seed), task.data, throttle, now);
  }

  /** Scores `global` on a held-out set: the objective's metric sums (federated evaluation adds them up across devices). */
  async evaluate(global: Weights, set: LabelledSet): Promise<Float64Array> {
    writeWeights(this.model, global);
    return evaluationSums(this.model, set, this.schema);
  }

  /**
   * Trains from `global` on `set`: `hyper.localEpochs` passes, or when `budget` is given
   * that many sample visits (a scheduler's share of work: a fraction of an epoch on a slow
   * device, several on a fast one). A hand-written loop rather than `model.fit`: batches
   * come from a seeded shuffle, redrawn each epoch, so a run is reproducible, and there is
   * no per-batch callback machinery on the hot path.
   */
  async train(global: Weights, set: LabelledSet, hyper: Hyper, seed: number, onProgress?: ProgressCallback, signal?: AbortSignal, budget?: number): Promise<TrainResult> {
    const started = this.now();
    const { x, y } = this.tensorsFor(set);
    writeWeights(this.model, global);
    const opt = optimizer(hyper);
    const rng = createRng(seed);
    const perEpoch = Math.ceil(set.n / hyper.batchSize);
    const steps = budget === undefined ? perEpoch * hyper.localEpochs : Math.max(1, Math.ceil(budget / hyper.batchSize));
    // Loss and accuracy are read over the last epoch's worth of steps.
    const firstCounted = Math.max(0, steps - perEpoch);
    const order = Array.from({ length: set.n }, (_, i) => i);
    let totals = tf.zeros([this.objective.sumsLength]); // the objective's metric sums over the counted steps
    let counted = 0;
    let processed = 0;
    const mu = hyper.proximalMu ?? 0;
    const anchor = mu > 0 ? this.proximalAnchor(global) : undefined;
    try {
      let lastReport = this.now();
      let lastYield = this.now();
      for (let step = 0; step < steps; step++) {
        const b = step % perEpoch;
        if (b === 0) shuffleInPlace(order, rng);
        const stepStarted = performance.now();
        const rows = Int32Array.from(order.slice(b * hyper.batchSize, (b + 1) * hyper.batchSize));
        const metrics = this.step(opt, x, y, rows, step >= firstCounted, anchor && { anchor, mu });
        processed += rows.length;
        if (metrics) {
          counted += rows.length;
          const next = tf.add(totals, metrics);
          tf.dispose([totals, metrics]);
          totals = next;
        }
        if (onProgress && this.now() - lastReport > 250) {
          lastReport = this.now();
          onProgress((step + 1) / steps, Number.NaN);
        }
        if (await this.paced(stepStarted, lastYield)) {
          lastYield = this.now();
          signal?.throwIfAborted(); // stopped, paused, or superseded by a newer round
        }
      }
    } catch (error) {
      tf.dispose(totals);
      throw error;
    } finally {
      opt.dispose();
      if (anchor) tf.dispose(anchor);
    }
    const sums = await totals.data();
    totals.dispose();
    const metrics = finiteMetrics(this.objective.metrics(sums));
    const loss = metrics.loss ?? Number.NaN;
    onProgress?.(1, loss);
    return {
      weights: await readWeightsAsync(this.model),
      // What FedAvg weighs by: distinct samples the update has seen.
      samples: Math.min(set.n, processed),
      processed,
      loss,
      metrics,
      durationMs: this.now() - started,
    };
  }

  /**
   * One optimizer step on the batch `rows`; with `counts`, its summed loss and correct
   * predictions, kept on the device (reading them back every batch would stall the pipeline).
   */
  private step(opt: tf.Optimizer, x: tf.Tensor, y: tf.Tensor, rows: Int32Array, counts: boolean, proximal: { anchor: tf.Tensor[]; mu: number } | undefined): tf.Tensor | undefined {
    return tf.tidy(() => {
      const idx = tf.tensor1d(rows, 'int32');
      const xb = modelInput(this.schema, tf.gather(x, idx) as tf.Tensor2D);
      const yb = tf.gather(y, idx);
      let outputs: tf.Tensor | undefined;
      let losses: tf.Tensor1D | undefined;
      opt.minimize(() => {
        const out = this.model.apply(xb, { training: true }) as tf.Tensor;
        const perSample = this.objective.loss(out, yb);
        if (counts) {
          outputs = tf.keep(out);
          losses = tf.keep(perSample);
        }
        const data = tf.mean(perSample) as tf.Scalar;
        return proximal ? tf.add(data, this.proximalTerm(proximal.anchor, proximal.mu)) : data;
      });
      if (!outputs || !losses) return undefined;
      const sums = this.objective.batchSums(outputs, yb, losses);
      tf.dispose([outputs, losses]);
      return sums;
    });
  }

  /**
   * After a step: idles to the throttle, or yields a macrotask turn once YIELD_EVERY_MS of
   * training have passed. True when the event loop got a turn.
   */
  private async paced(stepStarted: number, lastYield: number): Promise<boolean> {
    if (this.throttle < 1) {
      await sleep((performance.now() - stepStarted) * (1 / this.throttle - 1));
      return true;
    }
    if (this.now() - lastYield <= YIELD_EVERY_MS) return false;
    await yieldToEventLoop();
    return true;
  }

  /** The global weights as tensors, in the order of the model's trainable variables. */
  private proximalAnchor(global: Weights): tf.Tensor[] {
    const variables = this.model.trainableWeights;
    if (variables.length !== global.length) throw new Error('FedProx needs every weight to be trainable');
    return variables.map((v, i) => tf.tensor(global[i]!, v.read().shape));
  }

  /** FedProx: μ/2 · Σ ‖w − w_global‖² over the trainable variables. */
  private proximalTerm(anchor: tf.Tensor[], mu: number): tf.Scalar {
    const squared = this.model.trainableWeights.map((v, i) => tf.sum(tf.squaredDifference(v.read(), anchor[i]!)));
    return tf.mul(mu / 2, tf.addN(squared)) as tf.Scalar;
  }

  dispose(): void {
    this.model.dispose();
    if (this.data) tf.dispose([this.data.x, this.data.y]);
  }

  private tensorsFor(set: LabelledSet) {
    if (this.data?.set !== set) {
      if (this.data) tf.dispose([this.data.x, this.data.y]);
      this.data = { set, ...tensorsOf(set, this.objective.labelDtype) };
    }
    return this.data;
  }
}
