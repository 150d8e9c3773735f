import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { LabelledSet } from '../data/dataset.ts';
import { inputShapeOf, vocabularySize, type DataSchema } from '../data/schema.ts';
import { objectiveOf, type Objective } from './objective.ts';

/** Rows `start`–`end` of the set as tensors: features n × features (as stored), labels of the objective's type. */
export function tensorsOf(set: LabelledSet, labelDtype: Objective['labelDtype'], start = 0, end = set.n): { x: tf.Tensor2D; y: tf.Tensor1D } {
  const x = tf.tensor2d(set.x.subarray(start * set.features, end * set.features), [end - start, set.features]);
  const y = tf.tensor1d(set.y.subarray(start, end) as Float32Array | Int32Array, labelDtype);
  return { x, y };
}

/**
 * A batch of stored features as the model reads them: images in their h × w × c shape,
 * text tokens one-hot (so the first layer's projection is the embedding, and every kernel
 * it needs trains on the WASM backend, which lacks the Embedding layer's gradient).
 */
export function modelInput(schema: DataSchema, x: tf.Tensor2D): tf.Tensor {
  if (schema.kind === 'text') return tf.oneHot(tf.cast(x, 'int32'), vocabularySize(schema));
  return tf.reshape(x, [x.shape[0], ...inputShapeOf(schema)]);
}

/** A model's metric sums over a held-out set, in batches (what federated evaluation reports, and what the server's scores come from). */
export async function evaluationSums(model: tfl.LayersModel, set: LabelledSet, schema: DataSchema, batchSize = 500): Promise<Float64Array> {
  const objective = objectiveOf(schema);
  const sums = new Float64Array(objective.sumsLength);
  for (let start = 0; start < set.n; start += batchSize) {
    const end = Math.min(start + batchSize, set.n);
    const batch = tf.tidy(() => {
      const { x, y } = tensorsOf(set, objective.labelDtype, start, end);
      const outputs = model.predict(modelInput(schema, x)) as tf.Tensor;
      return objective.batchSums(outputs, y, objective.loss(outputs, y));
    });
    const values = await batch.data();
    batch.dispose();
    for (let i = 0; i < sums.length; i++) sums[i]! += values[i]!;
  }
  return sums;
}

/** Scores with a value: a score that cannot be computed (AUC of one class) is left out. */
export function finiteMetrics(metrics: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(metrics).filter(([, v]) => Number.isFinite(v)));
}
