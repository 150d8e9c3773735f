import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A model's model.json (parsed) and weights.bin, as `model.save('file://…')` in tfjs-node writes them. */
export interface ModelFiles {
  modelJson: Record<string, unknown> & { modelTopology: unknown; weightsManifest: Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }> };
  weights: Uint8Array;
}

export async function modelFiles(model: tfl.LayersModel): Promise<ModelFiles> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => {
    artifacts = a;
    return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
  }));
  const weights = new Uint8Array(tf.io.concatenateArrayBuffers(artifacts!.weightData as ArrayBuffer | ArrayBuffer[]));
  const { modelTopology, format, generatedBy, convertedBy, weightSpecs } = artifacts!;
  // What TF.js's own file and HTTP handlers write (io_utils' getModelJSONForModelArtifacts, not exported), the weights in one file beside it.
  const modelJson = { modelTopology, format, generatedBy, convertedBy, weightsManifest: [{ paths: ['weights.bin'], weights: weightSpecs! }] };
  return { modelJson: modelJson as ModelFiles['modelJson'], weights };
}

/** Writes model.json and weights.bin into `folder`; returns model.json's path. */
export async function writeModelFiles(model: tfl.LayersModel, folder: string): Promise<string> {
  const { modelJson, weights } = await modelFiles(model);
  writeFileSync(join(folder, 'model.json'), JSON.stringify(modelJson));
  writeFileSync(join(folder, 'weights.bin'), weights);
  return join(folder, 'model.json');
}

/** A layer of a topology, as model.json spells it. */
export interface LayerJson {
  class_name: string;
  config: Record<string, unknown>;
}

/** The layers of a sequential model's topology, for tests to edit into hostile uploads. */
export function layersOf(modelJson: ModelFiles['modelJson']): LayerJson[] {
  return (modelJson.modelTopology as { config: { layers: LayerJson[] } }).config.layers;
}
