import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TributaryError } from '../shared/errors.ts';
import type { Weights } from '../shared/aggregate.ts';
import { decodeWeights } from '../shared/model-wire.ts';

/**
 * Each round's global model as a TF.js layers-model folder (model.json + weights.bin),
 * loadable by `tf.loadLayersModel`. Written to a temporary folder and renamed into
 * place, so a crash never leaves a half-written checkpoint.
 */
export class Checkpoints {
  constructor(private readonly root: string) {}

  folder(taskId: number, round: number): string {
    return join(this.root, `task-${taskId}`, `round-${round}`);
  }

  async save(taskId: number, round: number, model: tfl.LayersModel): Promise<void> {
    let artifacts: tf.io.ModelArtifacts | undefined;
    await model.save(tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
    }));
    if (!artifacts?.weightData || !artifacts.weightSpecs) throw new Error('model produced no weights');
    const weights = new Uint8Array(tf.io.concatenateArrayBuffers(artifacts.weightData as ArrayBuffer | ArrayBuffer[]));
    const modelJson = {
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy: 'tributary',
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
    };
    const final = this.folder(taskId, round);
    const temporary = `${final}.tmp-${process.pid}`;
    await rm(temporary, { recursive: true, force: true });
    await mkdir(temporary, { recursive: true });
    await writeFile(join(temporary, 'weights.bin'), weights);
    await writeFile(join(temporary, 'model.json'), JSON.stringify(modelJson));
    await rm(final, { recursive: true, force: true });
    await rename(temporary, final);
  }

  async readFile(taskId: number, round: number, file: 'model.json' | 'weights.bin'): Promise<Buffer> {
    try {
      return await readFile(join(this.folder(taskId, round), file));
    } catch {
      throw new TributaryError('ROUND_NOT_FOUND', `task ${taskId} round ${round}`);
    }
  }

  async loadWeights(taskId: number, round: number, lengths: readonly number[]): Promise<Weights> {
    return decodeWeights(await this.readFile(taskId, round, 'weights.bin'), lengths);
  }
}
