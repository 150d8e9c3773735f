import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { LabelledSet } from '../../shared/data/dataset.ts';
import { sparseCrossEntropy } from '../../shared/ml/models.ts';

export interface Evaluation {
  accuracy: number;
  loss: number;
}

/** Scores a model on a held-out set: mean cross-entropy and top-1 accuracy. */
export async function evaluate(model: tfl.LayersModel, set: LabelledSet, batchSize = 1000): Promise<Evaluation> {
  const inputShape = model.inputs[0]!.shape.slice(1) as number[];
  let correct = 0;
  let lossSum = 0;
  for (let start = 0; start < set.n; start += batchSize) {
    const end = Math.min(start + batchSize, set.n);
    const [batchCorrect, batchLoss] = tf.tidy(() => {
      const x = tf.tensor(set.x.subarray(start * set.features, end * set.features), [end - start, ...inputShape]);
      const labels = tf.tensor1d(set.y.subarray(start, end), 'int32');
      const probs = model.predict(x) as tf.Tensor2D;
      const hits = tf.sum(tf.equal(tf.argMax(probs, 1), labels));
      const nll = tf.sum(sparseCrossEntropy(probs, labels));
      return [hits.dataSync()[0]!, nll.dataSync()[0]!];
    });
    correct += batchCorrect;
    lossSum += batchLoss;
  }
  return { accuracy: correct / set.n, loss: lossSum / set.n };
}
