import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { TributaryError } from '../../shared/errors.ts';
import type { Weights } from '../../shared/ml/aggregate.ts';
import { decodeWeights, encodeWeights } from '../../shared/codec/model-wire.ts';
import type { StrategyName } from '../../shared/protocol/task.ts';
import type { CheckpointStore } from './checkpoint-store.ts';

/** What the server needs besides the weights to carry on exactly: the optimizer's memory and the secure clips. */
export interface ServerState {
  strategy: StrategyName;
  tensors: Weights;
  clips: number[];
}

/**
 * Each round's global model as a TF.js layers model (model.json + weights.bin, what
 * `tf.loadLayersModel` reads), with the server state beside it (server-state.json +
 * server-state.bin), kept in a CheckpointStore.
 */
export class Checkpoints {
  constructor(private readonly store: CheckpointStore) {}

  /**
   * Writes a round's checkpoint. `fence`: a cluster leader's token; ROUND_OUT_OF_ORDER when
   * the store refuses it (the round is recorded, or a newer leader wrote it).
   */
  async save(taskId: number, round: number, model: tfl.LayersModel, state: ServerState, fence?: number): Promise<void> {
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
    const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
    const written = await this.store.put(taskId, round, {
      'weights.bin': weights,
      'model.json': json(modelJson),
      'server-state.bin': encodeWeights(state.tensors),
      'server-state.json': json({ strategy: state.strategy, clips: state.clips, lengths: state.tensors.map((t) => t.length) }),
    }, fence);
    if (!written) throw new TributaryError('ROUND_OUT_OF_ORDER', `task ${taskId} round ${round}: recorded already, or a newer leader wrote its checkpoint`);
  }

  exists(taskId: number, round: number): Promise<boolean> {
    return this.store.has(taskId, round);
  }

  /** The server state saved with a round's model; undefined for a checkpoint written before it existed. */
  async loadServerState(taskId: number, round: number): Promise<ServerState | undefined> {
    const [json, bin] = await Promise.all([this.store.get(taskId, round, 'server-state.json'), this.store.get(taskId, round, 'server-state.bin')]);
    if (!json || !bin) return undefined;
    const meta = JSON.parse(new TextDecoder().decode(json)) as { strategy: StrategyName; clips: number[]; lengths: number[] };
    return { strategy: meta.strategy, clips: meta.clips, tensors: decodeWeights(bin, meta.lengths) };
  }

  async readFile(taskId: number, round: number, file: 'model.json' | 'weights.bin'): Promise<Uint8Array> {
    const bytes = await this.store.get(taskId, round, file);
    if (!bytes) throw new TributaryError('ROUND_NOT_FOUND', `task ${taskId} round ${round}`);
    return bytes;
  }

  /** An uploaded model's initial weights (float32, in weight order), kept until round 0's checkpoint is made from them. */
  async saveInitialWeights(taskId: number, weights: Weights): Promise<void> {
    await this.store.putTaskFile(taskId, INITIAL_WEIGHTS, encodeWeights(weights));
  }

  async loadInitialWeights(taskId: number, lengths: readonly number[]): Promise<Weights | undefined> {
    const bytes = await this.store.getTaskFile(taskId, INITIAL_WEIGHTS);
    return bytes && decodeWeights(bytes, lengths);
  }

  async loadWeights(taskId: number, round: number, lengths: readonly number[]): Promise<Weights> {
    return decodeWeights(await this.readFile(taskId, round, 'weights.bin'), lengths);
  }
}

const INITIAL_WEIGHTS = 'initial-weights.bin';
