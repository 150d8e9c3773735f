import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TabularSchema } from '../../shared/data/schema.ts';
import type { ErrorCode } from '../../shared/errors.ts';
import { buildModel, readWeights, writeWeights } from '../../shared/ml/models.ts';
import { DEFAULT_MODELS } from '../../shared/ml/model-spec.ts';
import { FASHION_MNIST_SCHEMA } from '../../shared/data/fashion-mnist.ts';
import { MODEL_LIMITS } from '../../shared/protocol/model-upload.ts';
import { acceptModel } from '../../server/models/accept-model.ts';
import { validateUpload } from '../../server/models/validate-upload.ts';
import { initServerBackend } from '../../server/rounds/tf-backend.ts';
import { layersOf, modelFiles, type ModelFiles } from '../support/model-files.ts';

/** Two numeric columns and a colour predict one of three classes: 5 features in, 3 units out. */
const SCHEMA: TabularSchema = {
  kind: 'tabular',
  columns: [
    { name: 'x', type: 'numeric', min: -3, max: 3 },
    { name: 'y', type: 'numeric', min: -3, max: 3 },
    { name: 'colour', type: 'categorical', categories: ['red', 'green', 'blue'] },
    { name: 'class', type: 'categorical', categories: ['a', 'b', 'c'] },
  ],
  label: 'class',
};

function classifier(inputs = 5, units = 3, extra: tfl.layers.Layer[] = []): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [inputs], units: 8, activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }) }),
      ...extra,
      tfl.layers.dense({ units, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode, ...mentions: string[]): Promise<void> {
  const error = await promise.then(() => undefined, (e: unknown) => e as { code?: string; message?: string });
  expect(error, `expected ${code}`).toBeDefined();
  expect(error!.code, error!.message).toBe(code);
  for (const text of mentions) expect(error!.message).toContain(text);
}

/** A deep copy, to edit one file without touching the others' fixture. */
const copy = (files: ModelFiles): ModelFiles => ({ modelJson: structuredClone(files.modelJson), weights: files.weights.slice() });

function setFloat(bytes: Uint8Array, index: number, value: number): Uint8Array {
  new DataView(bytes.buffer, bytes.byteOffset).setFloat32(index * 4, value, true);
  return bytes;
}

describe('uploaded model validation', () => {
  let files: ModelFiles;
  beforeAll(async () => {
    await initServerBackend();
    files = await modelFiles(classifier());
  });

  it('accepts a TF.js model and its weights, which round-trip to the same predictions', async () => {
    const original = classifier();
    const { modelJson, weights } = await modelFiles(original);
    const accepted = await validateUpload({ modelJson, weights }, SCHEMA);
    expect(accepted.spec).toEqual({ kind: 'layers', topology: modelJson.modelTopology });
    const rebuilt = await buildModel(accepted.spec, SCHEMA, 7);
    writeWeights(rebuilt, accepted.weights!);
    expect(readWeights(rebuilt)).toEqual(readWeights(original));
    const x = tf.randomUniform([4, 5], 0, 1, 'float32', 3);
    expect(Array.from((rebuilt.predict(x) as tf.Tensor).dataSync())).toEqual(Array.from((original.predict(x) as tf.Tensor).dataSync()));
  });

  it('accepts weights sent as base64, as the REST body carries them', async () => {
    const original = classifier();
    const { modelJson, weights } = await modelFiles(original);
    // Small enough that Node decodes it into its shared buffer pool, at an offset.
    const accepted = await acceptModel({ kind: 'layers', modelJson, weights: Buffer.from(weights).toString('base64') }, SCHEMA);
    expect(accepted.weights).toEqual(readWeights(original));
  });

  it('accepts a topology without weights (the model starts from its initializers)', async () => {
    const accepted = await validateUpload({ modelJson: files.modelJson }, SCHEMA);
    expect(accepted.weights).toBeUndefined();
  });

  it('pairs weights by name, as tf.loadLayersModel does, when the manifest lists them in another order (Keras writes a layer\'s weights together)', async () => {
    const original = classifier(5, 3, [tfl.layers.batchNormalization()]);
    const { modelJson, weights } = await modelFiles(original);
    const entries = modelJson.weightsManifest[0]!.weights;
    // TF.js keeps the non-trainable moving mean and variance last; put them after the layer's gamma and beta, as Keras does.
    const order = [0, 1, 2, 3, 6, 7, 4, 5];
    const sizes = entries.map((e) => e.shape.reduce((a, b) => a * b, 1) * 4);
    const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
    const reordered = new Uint8Array(weights.length);
    let at = 0;
    for (const i of order) {
      reordered.set(weights.subarray(starts[i]!, starts[i]! + sizes[i]!), at);
      at += sizes[i]!;
    }
    modelJson.weightsManifest[0]!.weights = order.map((i) => entries[i]!);
    const accepted = await validateUpload({ modelJson, weights: reordered }, SCHEMA);
    expect(accepted.weights).toEqual(readWeights(original));
  });

  it('refuses a model.json over the cap with MODEL_TOO_LARGE', async () => {
    const { modelJson } = copy(files);
    modelJson.userDefinedMetadata = { padding: 'x'.repeat(MODEL_LIMITS.modelJsonBytes) };
    await expectCode(validateUpload({ modelJson }, SCHEMA), 'MODEL_TOO_LARGE', 'model.json');
  });

  it('refuses weights over the cap with MODEL_TOO_LARGE', async () => {
    await expectCode(validateUpload({ modelJson: files.modelJson, weights: new Uint8Array(MODEL_LIMITS.weightsBytes + 4) }, SCHEMA), 'MODEL_TOO_LARGE', 'weights');
  });

  it('refuses a model over the parameter cap with MODEL_TOO_LARGE, without allocating its weights', async () => {
    const { modelJson } = copy(files);
    layersOf(modelJson)[0]!.config.units = 1_000_000_000;
    const before = tf.memory().numBytes;
    await expectCode(validateUpload({ modelJson }, SCHEMA), 'MODEL_TOO_LARGE', '20,000,000');
    // 5 × 10⁹ float32 would be 20 GB; the outline stops at the first weight over the cap.
    expect(tf.memory().numBytes - before).toBeLessThan(1024);
  });

  it('refuses a built-in architecture over the parameter cap with MODEL_TOO_LARGE', async () => {
    await expectCode(acceptModel({ kind: 'mlp', hidden: [4096, 4096, 4096, 4096] }, FASHION_MNIST_SCHEMA), 'MODEL_TOO_LARGE');
  });

  it.each(['MyCustomLayer', 'Lambda', 'Adam', 'constructor'])('refuses the layer class %s with MODEL_LAYER_UNSUPPORTED, naming it', async (className) => {
    const { modelJson } = copy(files);
    layersOf(modelJson)[1]!.class_name = className;
    await expectCode(validateUpload({ modelJson }, SCHEMA), 'MODEL_LAYER_UNSUPPORTED', `"${className}"`);
  });

  it('refuses a stateful recurrent layer with MODEL_LAYER_UNSUPPORTED', async () => {
    const text = { kind: 'text', tokenizer: 'char', vocabulary: 'ab', sequenceLength: 4, stride: 1 } as const;
    const rnn = tfl.sequential({ layers: [tfl.layers.simpleRNN({ batchInputShape: [8, 4, 3], units: 4, stateful: true, recurrentInitializer: 'glorotUniform' }), tfl.layers.dense({ units: 3, activation: 'softmax' })] });
    const { modelJson } = await modelFiles(rnn);
    await expectCode(validateUpload({ modelJson }, text), 'MODEL_LAYER_UNSUPPORTED', 'stateful');
  });

  it('refuses an input shape the schema does not give with MODEL_SHAPE_MISMATCH, naming both', async () => {
    const { modelJson } = await modelFiles(classifier(4, 3));
    await expectCode(validateUpload({ modelJson }, SCHEMA), 'MODEL_SHAPE_MISMATCH', '[4]', '[5]');
  });

  it('refuses an output the schema does not need with MODEL_SHAPE_MISMATCH, naming both', async () => {
    const { modelJson } = await modelFiles(classifier(5, 2));
    await expectCode(validateUpload({ modelJson }, SCHEMA), 'MODEL_SHAPE_MISMATCH', '[2]', '[3]');
  });

  it('refuses a built-in architecture that does not suit the data with MODEL_SHAPE_MISMATCH', async () => {
    await expectCode(acceptModel(DEFAULT_MODELS.cnn, SCHEMA), 'MODEL_SHAPE_MISMATCH', 'tabular');
  });

  it.each([['NaN', Number.NaN], ['Infinity', Number.POSITIVE_INFINITY], ['-Infinity', Number.NEGATIVE_INFINITY]])('refuses %s in the weights with MODEL_WEIGHTS_NOT_FINITE, naming the weight', async (_, value) => {
    const { modelJson, weights } = copy(files);
    // Index 40 is in the first dense layer's bias (its kernel is 5 × 8 = 40 values).
    await expectCode(validateUpload({ modelJson, weights: setFloat(weights, 40, value) }, SCHEMA), 'MODEL_WEIGHTS_NOT_FINITE', '/bias');
  });

  it('refuses weights.bin shorter than the manifest says with MODEL_MALFORMED', async () => {
    await expectCode(validateUpload({ modelJson: files.modelJson, weights: files.weights.subarray(4) }, SCHEMA), 'MODEL_MALFORMED', 'bytes');
  });

  it('refuses a manifest whose shapes are not the model\'s with MODEL_MALFORMED, naming both', async () => {
    const { modelJson, weights } = copy(files);
    const [kernel, bias] = modelJson.weightsManifest[0]!.weights;
    // Same bytes in all (20 + 28 = 40 + 8 values), cut differently.
    kernel!.shape = [5, 4];
    bias!.shape = [28];
    await expectCode(validateUpload({ modelJson, weights }, SCHEMA), 'MODEL_MALFORMED', '[5, 4]', '[5, 8]');
  });

  it('refuses a manifest naming a weight the model does not have with MODEL_MALFORMED', async () => {
    const { modelJson, weights } = copy(files);
    modelJson.weightsManifest[0]!.weights[0]!.name = 'elsewhere/kernel';
    await expectCode(validateUpload({ modelJson, weights }, SCHEMA), 'MODEL_MALFORMED', 'elsewhere/kernel');
  });

  it('refuses weights that are not float32 with MODEL_MALFORMED', async () => {
    const { modelJson, weights } = copy(files);
    modelJson.weightsManifest[0]!.weights[0]!.dtype = 'int32';
    await expectCode(validateUpload({ modelJson, weights }, SCHEMA), 'MODEL_MALFORMED', 'int32');
  });

  it('refuses weights without a manifest with MODEL_MALFORMED', async () => {
    const { modelTopology } = files.modelJson;
    await expectCode(validateUpload({ modelJson: { modelTopology }, weights: files.weights }, SCHEMA), 'MODEL_MALFORMED', 'weightsManifest');
  });

  it.each([
    ['no modelTopology', { format: 'layers-model' }],
    ['a graph model', { format: 'graph-model', modelTopology: { node: [] } }],
    ['an array', [1, 2]],
    ['a topology that does not build', { modelTopology: { class_name: 'Sequential', config: { layers: [{ class_name: 'Dense', config: { units: 'many' } }] } } }],
  ])('refuses %s with MODEL_MALFORMED', async (_, modelJson) => {
    await expectCode(validateUpload({ modelJson }, SCHEMA), 'MODEL_MALFORMED');
  });

  it('accepts a Keras recurrent layer with its default Orthogonal initializer, which TF.js cannot run here, by building it with Glorot (the uploaded weights replace the values)', async () => {
    const gru = tfl.sequential({ layers: [tfl.layers.gru({ inputShape: [4, 3], units: 4, recurrentInitializer: 'glorotUniform' }), tfl.layers.dense({ units: 3, activation: 'softmax' })] });
    const { modelJson } = await modelFiles(gru);
    // Keras's default for recurrent kernels.
    (layersOf(modelJson)[0]!.config.recurrent_initializer as { class_name: string }).class_name = 'Orthogonal';
    const text = { kind: 'text', tokenizer: 'char', vocabulary: 'ab', sequenceLength: 4, stride: 1 } as const;
    const accepted = await validateUpload({ modelJson }, text);
    expect(accepted.spec.kind).toBe('layers');
  });

  it('refuses weights that are not base64 with MODEL_MALFORMED', async () => {
    await expectCode(acceptModel({ kind: 'layers', modelJson: files.modelJson, weights: 'not base64!' }, SCHEMA), 'MODEL_MALFORMED', 'base64');
  });

  it('validates a stored topology as it validates an upload', async () => {
    const { modelJson } = await modelFiles(classifier(4, 3));
    await expectCode(acceptModel({ kind: 'layers', topology: modelJson.modelTopology as Record<string, unknown> }, SCHEMA), 'MODEL_SHAPE_MISMATCH');
  });
});
