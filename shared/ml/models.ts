import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { ModelPreset } from '../protocol/task.ts';
import type { Weights } from './aggregate.ts';

/** The model presets a task can name. Built the same way on server and clients. */

export interface PresetInfo {
  inputShape: number[];
  numClasses: number;
  /** Convolutional models cannot train on the WASM backend (no conv filter gradient). */
  hasConv: boolean;
}

export const PRESETS: Record<ModelPreset, PresetInfo> = {
  'fmnist-mlp': { inputShape: [784], numClasses: 10, hasConv: false },
  'fmnist-cnn': { inputShape: [28, 28, 1], numClasses: 10, hasConv: true },
};

/** Same preset and seed give the same initial weights everywhere. */
export function buildModel(preset: ModelPreset, seed: number): tfl.LayersModel {
  let layerSeed = seed;
  const init = () => tfl.initializers.glorotUniform({ seed: layerSeed++ });
  if (preset === 'fmnist-mlp') {
    return tfl.sequential({
      name: 'fmnist_mlp',
      layers: [
        tfl.layers.dense({ inputShape: [784], units: 200, activation: 'relu', kernelInitializer: init() }),
        tfl.layers.dense({ units: 200, activation: 'relu', kernelInitializer: init() }),
        tfl.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init() }),
      ],
    });
  }
  return tfl.sequential({
    name: 'fmnist_cnn',
    layers: [
      tfl.layers.conv2d({ inputShape: [28, 28, 1], filters: 16, kernelSize: 3, activation: 'relu', kernelInitializer: init() }),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.conv2d({ filters: 32, kernelSize: 3, activation: 'relu', kernelInitializer: init() }),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 64, activation: 'relu', kernelInitializer: init() }),
      tfl.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init() }),
    ],
  });
}

export function readWeights(model: tfl.LayersModel): Weights {
  return model.getWeights().map((w) => w.dataSync() as Float32Array).map((d) => new Float32Array(d));
}

/** The model's weights, read asynchronously: WebGPU in Node (no OffscreenCanvas) cannot read tensors back synchronously. */
export async function readWeightsAsync(model: tfl.LayersModel): Promise<Weights> {
  return Promise.all(model.getWeights().map(async (w) => new Float32Array(await w.data<'float32'>())));
}

export function writeWeights(model: tfl.LayersModel, weights: Weights): void {
  const current = model.getWeights();
  if (current.length !== weights.length) throw new Error('weight tensor count mismatch');
  const tensors = weights.map((w, i) => tf.tensor(w, current[i]!.shape));
  model.setWeights(tensors);
  tf.dispose(tensors);
}

export function weightLengths(model: tfl.LayersModel): number[] {
  return model.getWeights().map((w) => w.size);
}

/** Per-sample cross-entropy of predicted class probabilities against integer labels. */
export function sparseCrossEntropy(probs: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  const picked = tf.sum(tf.mul(probs, tf.oneHot(labels, probs.shape[1])), 1);
  return tf.neg(tf.log(tf.clipByValue(picked, 1e-7, 1))) as tf.Tensor1D;
}

const parameterCounts = new Map<ModelPreset, number>();

/** Trainable values in a preset's model (built once, then remembered). */
export function parameterCount(preset: ModelPreset): number {
  let n = parameterCounts.get(preset);
  if (n === undefined) {
    const model = buildModel(preset, 0);
    n = model.countParams();
    model.dispose();
    parameterCounts.set(preset, n);
  }
  return n;
}
