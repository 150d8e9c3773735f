import * as tf from '@tensorflow/tfjs-core';
import { labelColumn, targetOf, type DataSchema, type Target } from '../data/schema.ts';

/**
 * What a task's model is trained to minimise and scored by, chosen by its data schema's
 * target. Every score is a ratio of sample-weighted sums, so scores of many devices
 * combine by adding their sums: the same vector serves local training, server-side
 * evaluation and federated evaluation (where, in a secure task, it is summed securely).
 */

/** Named scores, e.g. { loss: 0.41, accuracy: 0.86 }. */
export type Metrics = Record<string, number>;

export interface Objective {
  readonly target: Target;
  readonly labelDtype: 'int32' | 'float32';
  /** Each sample's loss, from the model's outputs (probabilities, or the value for regression). */
  loss(outputs: tf.Tensor, labels: tf.Tensor): tf.Tensor1D;
  /** A batch's metric sums, left on the device; `losses` are its per-sample losses. Layout: [samples, Σ loss, …]. */
  batchSums(outputs: tf.Tensor, labels: tf.Tensor, losses: tf.Tensor1D): tf.Tensor1D;
  readonly sumsLength: number;
  /** Scores from summed metric sums. */
  metrics(sums: ArrayLike<number>): Metrics;
  /** The score people read first, and whether more is better. */
  readonly headline: { name: string; higherIsBetter: boolean };
}

const EPSILON = 1e-7;

/** Binary AUC is read from score histograms: sums of counts, so it federates. Bins of width 1/AUC_BINS. */
export const AUC_BINS = 50;

function sparseCrossEntropy(probs: tf.Tensor, labels: tf.Tensor): tf.Tensor1D {
  const classes = probs.shape[probs.shape.length - 1]!;
  const picked = tf.sum(tf.mul(probs, tf.oneHot(labels as tf.Tensor1D, classes)), 1);
  return tf.neg(tf.log(tf.clipByValue(picked, EPSILON, 1))) as tf.Tensor1D;
}

function classification(target: 'multiclass' | 'next-token'): Objective {
  return {
    target,
    labelDtype: 'int32',
    loss: sparseCrossEntropy,
    batchSums(outputs, labels, losses) {
      const hits = tf.sum(tf.cast(tf.equal(tf.argMax(outputs, 1), labels), 'float32'));
      return tf.stack([tf.scalar(labels.shape[0]!), tf.sum(losses), hits]) as tf.Tensor1D;
    },
    sumsLength: 3,
    metrics(sums): Metrics {
      const [n = 0, loss = 0, hits = 0] = Array.from(sums);
      const mean = loss / n;
      return target === 'next-token' ? { loss: mean, accuracy: hits / n, perplexity: Math.exp(mean) } : { loss: mean, accuracy: hits / n };
    },
    headline: target === 'next-token' ? { name: 'perplexity', higherIsBetter: false } : { name: 'accuracy', higherIsBetter: true },
  };
}

function binary(): Objective {
  return {
    target: 'binary',
    labelDtype: 'int32',
    loss(outputs, labels) {
      const p = tf.clipByValue(tf.reshape(outputs, [-1]), EPSILON, 1 - EPSILON);
      const y = tf.cast(labels, 'float32');
      return tf.neg(tf.add(tf.mul(y, tf.log(p)), tf.mul(tf.sub(1, y), tf.log(tf.sub(1, p))))) as tf.Tensor1D;
    },
    batchSums(outputs, labels, losses) {
      const p = tf.reshape(outputs, [-1]);
      const y = tf.cast(labels, 'float32');
      const hits = tf.sum(tf.cast(tf.equal(tf.cast(tf.greaterEqual(p, 0.5), 'float32'), y), 'float32'));
      // Each sample's score bin, one-hot, summed separately over positives and negatives.
      const bins = tf.oneHot(tf.cast(tf.clipByValue(tf.floor(tf.mul(p, AUC_BINS)), 0, AUC_BINS - 1), 'int32') as tf.Tensor1D, AUC_BINS);
      const positives = tf.sum(tf.mul(bins, tf.expandDims(y, 1)), 0);
      const negatives = tf.sum(tf.mul(bins, tf.expandDims(tf.sub(1, y), 1)), 0);
      return tf.concat([tf.stack([tf.scalar(labels.shape[0]!), tf.sum(losses), hits]), positives, negatives]) as tf.Tensor1D;
    },
    sumsLength: 3 + 2 * AUC_BINS,
    metrics(sums) {
      const n = sums[0] ?? 0;
      return { loss: (sums[1] ?? 0) / n, accuracy: (sums[2] ?? 0) / n, auc: aucFromHistograms(sums, 3) };
    },
    headline: { name: 'accuracy', higherIsBetter: true },
  };
}

/**
 * Area under the ROC curve from per-bin counts of positives and negatives: the chance a
 * random positive outscores a random negative, ties (same bin) counting one half.
 */
export function aucFromHistograms(sums: ArrayLike<number>, offset: number): number {
  let positives = 0;
  let negatives = 0;
  for (let b = 0; b < AUC_BINS; b++) {
    positives += sums[offset + b] ?? 0;
    negatives += sums[offset + AUC_BINS + b] ?? 0;
  }
  if (positives === 0 || negatives === 0) return Number.NaN;
  let below = 0; // negatives in lower bins than the current one
  let wins = 0;
  for (let b = 0; b < AUC_BINS; b++) {
    const pos = sums[offset + b] ?? 0;
    const neg = sums[offset + AUC_BINS + b] ?? 0;
    wins += pos * (below + neg / 2);
    below += neg;
  }
  return wins / (positives * negatives);
}

/** Regression on the label scaled to [0, 1] by its declared range; errors are reported in the label's own units. */
function regression(range: number): Objective {
  return {
    target: 'regression',
    labelDtype: 'float32',
    loss: (outputs, labels) => tf.squaredDifference(tf.reshape(outputs, [-1]), labels) as tf.Tensor1D,
    batchSums(outputs, labels, losses) {
      const absolute = tf.sum(tf.abs(tf.sub(tf.reshape(outputs, [-1]), labels)));
      return tf.stack([tf.scalar(labels.shape[0]!), tf.sum(losses), absolute]) as tf.Tensor1D;
    },
    sumsLength: 3,
    metrics(sums) {
      const [n = 0, squared = 0, absolute = 0] = Array.from(sums);
      return { loss: squared / n, mse: (squared / n) * range * range, mae: (absolute / n) * range };
    },
    headline: { name: 'mse', higherIsBetter: false },
  };
}

export function objectiveOf(schema: DataSchema): Objective {
  const target = targetOf(schema);
  if (target === 'binary') return binary();
  if (target === 'regression' && schema.kind === 'tabular') {
    const label = labelColumn(schema);
    return regression(label.type === 'numeric' ? label.max - label.min : 1);
  }
  return classification(target === 'next-token' ? 'next-token' : 'multiclass');
}

/** Adds `more` into `into` (metric sums of two batches, or two devices). */
export function addSums(into: Float64Array, more: ArrayLike<number>): Float64Array {
  for (let i = 0; i < into.length; i++) into[i]! += more[i] ?? 0;
  return into;
}
