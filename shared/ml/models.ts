import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { TributaryError } from '../errors.ts';
import { inputShapeOf, outputUnitsOf, targetOf, type DataSchema } from '../data/schema.ts';
import type { ModelSpec } from './model-spec.ts';
import type { Weights } from './aggregate.ts';

/**
 * Builds a task's model, the same way on server and clients: a built-in architecture
 * shaped by the data schema, or an uploaded topology. Same spec and seed give the same
 * initial weights everywhere (an uploaded model's initial weights come with it instead).
 */
export async function buildModel(spec: ModelSpec, schema: DataSchema, seed: number): Promise<tfl.LayersModel> {
  if (spec.kind === 'layers') {
    try {
      return await tfl.models.modelFromJSON({ modelTopology: runnableInitializers(spec.topology) } as unknown as tfl.ModelAndWeightsConfig);
    } catch (error) {
      throw new TributaryError('MODEL_MALFORMED', `the topology does not build: ${(error as Error).message}`);
    }
  }
  let layerSeed = seed;
  const init = () => tfl.initializers.glorotUniform({ seed: layerSeed++ });
  const units = outputUnitsOf(schema);
  const target = targetOf(schema);
  const activation = target === 'regression' ? 'linear' : target === 'binary' ? 'sigmoid' : 'softmax';
  const inputShape = inputShapeOf(schema);
  const layers: tfl.layers.Layer[] = [];
  if (spec.kind === 'gru') {
    if (schema.kind !== 'text') throw new TributaryError('MODEL_SHAPE_MISMATCH', `a GRU reads token sequences; this task's data is ${schema.kind}`);
    layers.push(
      // On one-hot tokens a linear projection is the embedding (modelInput: the WASM backend lacks the Embedding layer's gradient).
      tfl.layers.dense({ inputShape, units: spec.embedding, useBias: false, kernelInitializer: init() }),
      // Glorot rather than Keras's orthogonal recurrent default: TF.js's orthogonal initializer fails on these backends.
      tfl.layers.gru({ units: spec.units, kernelInitializer: init(), recurrentInitializer: init() }),
    );
  } else if (spec.kind === 'cnn') {
    if (schema.kind !== 'image') throw new TributaryError('MODEL_SHAPE_MISMATCH', `a CNN reads images; this task's data is ${schema.kind}`);
    spec.filters.forEach((filters, i) => {
      layers.push(
        tfl.layers.conv2d({ ...(i === 0 ? { inputShape } : {}), filters, kernelSize: 3, activation: 'relu', kernelInitializer: init() }),
        tfl.layers.maxPooling2d({ poolSize: 2 }),
      );
    });
    layers.push(tfl.layers.flatten(), tfl.layers.dense({ units: spec.dense, activation: 'relu', kernelInitializer: init() }));
  } else if (inputShape.length > 1) {
    layers.push(tfl.layers.flatten({ inputShape }));
  }
  if (spec.kind === 'mlp') {
    spec.hidden.forEach((hidden, i) => {
      layers.push(tfl.layers.dense({ ...(i === 0 && layers.length === 0 ? { inputShape } : {}), units: hidden, activation: 'relu', kernelInitializer: init() }));
    });
  }
  layers.push(tfl.layers.dense({ ...(layers.length === 0 ? { inputShape } : {}), units, activation, kernelInitializer: init() }));
  return tfl.sequential({ name: `${spec.kind}_model`, layers });
}

/**
 * The topology with each Orthogonal initializer (Keras's default for recurrent kernels) as
 * Glorot uniform: TF.js 4's Orthogonal fails on these backends, and initial values are
 * replaced by the uploaded (or checkpointed) weights anyway.
 */
function runnableInitializers(topology: unknown): unknown {
  if (Array.isArray(topology)) return topology.map(runnableInitializers);
  if (!topology || typeof topology !== 'object') return topology;
  const record = topology as Record<string, unknown>;
  if (record.class_name === 'Orthogonal') {
    const seed = (record.config as { seed?: unknown } | undefined)?.seed ?? null;
    return { class_name: 'GlorotUniform', config: { seed } };
  }
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, runnableInitializers(v)]));
}

/** Layers whose gradients the WASM backend lacks: convolutions (Conv2DBackpropFilter) and embeddings (UnsortedSegmentSum). */
const NOT_ON_WASM = /conv|embedding/i;

/** Whether the WASM backend can train the model; one with convolutions or embeddings trains elsewhere. */
export function trainsOnWasm(spec: ModelSpec): boolean {
  if (spec.kind === 'cnn') return false;
  if (spec.kind !== 'layers') return true;
  return !layerClassNames(spec.topology).some((name) => NOT_ON_WASM.test(name));
}

/** Every `class_name` of a layer in a Keras/TF.js topology, nested models included. */
export function layerClassNames(topology: unknown): string[] {
  const names: string[] = [];
  const visit = (node: unknown, isLayer: boolean) => {
    if (Array.isArray(node)) return node.forEach((n) => visit(n, isLayer));
    if (!node || typeof node !== 'object') return;
    const record = node as Record<string, unknown>;
    if (isLayer && typeof record.class_name === 'string') names.push(record.class_name);
    const config = record.config as Record<string, unknown> | unknown[] | undefined;
    // Sequential configs are a list of layers, or { layers: [...] }; functional ones { layers: [...] }; wrappers { layer: {...} }.
    if (Array.isArray(config)) visit(config, true);
    else if (config && typeof config === 'object') {
      if (config.layers) visit(config.layers, true);
      if (config.layer) visit(config.layer, true);
    }
  };
  visit(topology, false);
  const root = topology as { model_config?: unknown } | undefined;
  if (root?.model_config) visit(root.model_config, false);
  return names;
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

const parameterCounts = new Map<string, Promise<number>>();

/** Values in a task's model (built once per model and schema, then remembered). */
export function parameterCount(spec: ModelSpec, schema: DataSchema): Promise<number> {
  const key = JSON.stringify([spec, schema]);
  let n = parameterCounts.get(key);
  if (n === undefined) {
    n = buildModel(spec, schema, 0).then((model) => {
      const count = model.getWeights().reduce((a, w) => a + w.size, 0);
      model.dispose();
      return count;
    });
    n.catch(() => parameterCounts.delete(key));
    parameterCounts.set(key, n);
  }
  return n;
}
