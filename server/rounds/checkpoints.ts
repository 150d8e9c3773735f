import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TributaryError } from '../../shared/errors.ts';
import type { Weights } from '../../shared/ml/aggregate.ts';
import { decodeWeights, encodeWeights } from '../../shared/codec/model-wire.ts';
import type { StrategyName } from '../../shared/protocol/task.ts';

/** What the server needs besides the weights to carry on exactly: the optimizer's memory and the secure clips. */
export interface ServerState {
  strategy: StrategyName;
  tensors: Weights;
  clips: number[];
}

/**
 * Each round's global model as a TF.js layers-model folder (model.json + weights.bin),
 * loadable by `tf.loadLayersModel`, with the server state beside it (server-state.json +
 * server-state.bin). Written to a temporary folder and renamed into place, so a crash
 * never leaves a half-written checkpoint.
 */
export class Checkpoints {
  constructor(private readonly root: string) {}

  folder(taskId: number, round: number): string {
    return join(this.root, `task-${taskId}`, `round-${round}`);
  }

  async save(taskId: number, round: number, model: tfl.LayersModel, state: ServerState): Promise<void> {
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
    // One name per round: a temporary folder left by a crash is cleared when the round is retried.
    const temporary = `${final}.tmp`;
    await rm(temporary, { recursive: true, force: true });
    await mkdir(temporary, { recursive: true });
    await writeFile(join(temporary, 'weights.bin'), weights);
    await writeFile(join(temporary, 'model.json'), JSON.stringify(modelJson));
    await writeFile(join(temporary, 'server-state.bin'), encodeWeights(state.tensors));
    await writeFile(
      join(temporary, 'server-state.json'),
      JSON.stringify({ strategy: state.strategy, clips: state.clips, lengths: state.tensors.map((t) => t.length) }),
    );
    await rm(final, { recursive: true, force: true });
    await rename(temporary, final);
  }

  async exists(taskId: number, round: number): Promise<boolean> {
    return stat(join(this.folder(taskId, round), 'weights.bin')).then(() => true, () => false);
  }

  /** The server state saved with a round's model; undefined for a checkpoint written before it existed. */
  async loadServerState(taskId: number, round: number): Promise<ServerState | undefined> {
    const folder = this.folder(taskId, round);
    let meta: { strategy: StrategyName; clips: number[]; lengths: number[] };
    try {
      meta = JSON.parse(await readFile(join(folder, 'server-state.json'), 'utf8')) as typeof meta;
    } catch {
      return undefined;
    }
    const tensors = decodeWeights(await readFile(join(folder, 'server-state.bin')), meta.lengths);
    return { strategy: meta.strategy, clips: meta.clips, tensors };
  }

  async readFile(taskId: number, round: number, file: 'model.json' | 'weights.bin'): Promise<Buffer> {
    try {
      return await readFile(join(this.folder(taskId, round), file));
    } catch {
      throw new TributaryError('ROUND_NOT_FOUND', `task ${taskId} round ${round}`);
    }
  }

  /** An uploaded model's initial weights (float32, in weight order), kept until round 0's checkpoint is made from them. */
  async saveInitialWeights(taskId: number, weights: Weights): Promise<void> {
    await mkdir(join(this.root, `task-${taskId}`), { recursive: true });
    await writeFile(this.initialFile(taskId), encodeWeights(weights));
  }

  async loadInitialWeights(taskId: number, lengths: readonly number[]): Promise<Weights | undefined> {
    const bytes = await readFile(this.initialFile(taskId)).catch(() => undefined);
    return bytes && decodeWeights(bytes, lengths);
  }

  private initialFile(taskId: number): string {
    return join(this.root, `task-${taskId}`, 'initial-weights.bin');
  }

  async loadWeights(taskId: number, round: number, lengths: readonly number[]): Promise<Weights> {
    return decodeWeights(await this.readFile(taskId, round, 'weights.bin'), lengths);
  }
}
