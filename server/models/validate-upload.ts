import type { DataSchema } from '../../shared/data/schema.ts';
import { TributaryError } from '../../shared/errors.ts';
import type { Weights } from '../../shared/ml/aggregate.ts';
import type { ModelSpec } from '../../shared/ml/model-spec.ts';
import { buildModel } from '../../shared/ml/models.ts';
import { MODEL_LIMITS } from '../../shared/protocol/model-upload.ts';
import { checkLayerClasses } from './layer-classes.ts';
import { checkModelFits } from './model-fits.ts';
import { readUploadedWeights } from './upload-weights.ts';

/** What a user uploads: the parsed model.json and, optionally, its weight files' bytes. */
export interface UploadedModel {
  modelJson: unknown;
  weights?: Uint8Array | undefined;
}

/** A model a task may train: its spec, and the initial weights (model order) it brought. */
export interface AcceptedModel {
  spec: ModelSpec;
  weights?: Weights;
}

const MiB = 1024 * 1024;

function jsonBytes(value: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(value));
  } catch {
    throw new TributaryError('MODEL_MALFORMED', 'model.json cannot be written back as JSON');
  }
}

/** model.json's topology: a Layers model's, not a graph model's. */
function topologyOf(modelJson: unknown): Record<string, unknown> {
  const json = modelJson as { modelTopology?: unknown; format?: unknown } | null;
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new TributaryError('MODEL_MALFORMED', 'model.json is not a JSON object');
  if (json.format !== undefined && json.format !== 'layers-model') {
    throw new TributaryError('MODEL_MALFORMED', `model.json is a ${String(json.format)}; convert to a Layers model (tensorflowjs_converter --output_format tfjs_layers_model)`);
  }
  const topology = json.modelTopology;
  if (!topology || typeof topology !== 'object' || Array.isArray(topology)) throw new TributaryError('MODEL_MALFORMED', 'model.json has no modelTopology object');
  return topology as Record<string, unknown>;
}

/**
 * Builds the model once for real (its size is known to be under the cap by now), so that
 * an initializer that fails on this server's TF.js fails at upload, not when the task starts.
 */
async function checkBuilds(topology: Record<string, unknown>, schema: DataSchema): Promise<void> {
  (await buildModel({ kind: 'layers', topology }, schema, 0)).dispose();
}

/**
 * Checks an uploaded TF.js Layers model against the server's limits and the task's data,
 * cheapest checks first, and throws one coded error naming the first problem: sizes and
 * parameters (MODEL_TOO_LARGE), layer classes (MODEL_LAYER_UNSUPPORTED), input and output
 * shapes (MODEL_SHAPE_MISMATCH), the files themselves (MODEL_MALFORMED) and the weights'
 * values (MODEL_WEIGHTS_NOT_FINITE). The task keeps only the topology; the weights become round 0.
 */
export async function validateUpload(upload: UploadedModel, schema: DataSchema): Promise<AcceptedModel> {
  const size = jsonBytes(upload.modelJson);
  if (size > MODEL_LIMITS.modelJsonBytes) throw new TributaryError('MODEL_TOO_LARGE', `model.json is ${size} bytes; at most ${MODEL_LIMITS.modelJsonBytes / MiB} MiB`);
  const topology = topologyOf(upload.modelJson);
  const { weights } = upload;
  if (weights && weights.byteLength > MODEL_LIMITS.weightsBytes) throw new TributaryError('MODEL_TOO_LARGE', `the weights are ${weights.byteLength} bytes; at most ${MODEL_LIMITS.weightsBytes / MiB} MiB`);
  checkLayerClasses(topology);
  const spec: ModelSpec = { kind: 'layers', topology };
  const outline = await checkModelFits(spec, schema);
  await checkBuilds(topology, schema);
  if (!weights) return { spec };
  return { spec, weights: readUploadedWeights((upload.modelJson as { weightsManifest?: unknown }).weightsManifest, weights, outline.weights) };
}
