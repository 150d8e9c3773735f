import * as tfl from '@tensorflow/tfjs-layers';
import type { DataSchema } from '../../shared/data/schema.ts';
import { TributaryError } from '../../shared/errors.ts';
import type { ModelSpec } from '../../shared/ml/model-spec.ts';
import { buildModel } from '../../shared/ml/models.ts';

/** A model's graph without its weight values: what the upload checks read. */
export interface ModelOutline {
  parameters: number;
  /** Each input's and output's shape, the batch dimension (null) first. */
  inputShapes: Array<Array<number | null>>;
  outputShapes: Array<Array<number | null>>;
  /** Each weight's name (as a model.json manifest names it) and shape, in the model's weight order. */
  weights: Array<{ name: string; shape: number[] }>;
}

type AddWeight = (this: tfl.layers.Layer, name: string, shape: number[], dtype?: 'float32', initializer?: unknown, regularizer?: unknown, trainable?: boolean) => tfl.LayerVariable;

/**
 * Builds a model's graph with scalar stand-ins for its weights, stopping as soon as its
 * parameters pass `maxParameters` (MODEL_TOO_LARGE). TF.js allocates and initialises every
 * weight while it builds a layer, so a hostile topology (one dense layer of 10⁹ units) would
 * take gigabytes first, and the WASM heap never gives memory back. TF.js builds a model's
 * layers synchronously, so the stand-ins are swapped in and out around that one call:
 * nothing else can build a model meanwhile. (Should a build ever run after an await, it
 * gets real weights, and the outline is still right.)
 */
export async function outlineModel(spec: ModelSpec, schema: DataSchema, maxParameters: number): Promise<ModelOutline> {
  const layer = tfl.layers.Layer.prototype as unknown as { addWeight: AddWeight };
  const addWeight = layer.addWeight;
  const shapes = new Map<tfl.LayerVariable, number[]>();
  let parameters = 0;
  const tooLarge = (count: string) => new TributaryError('MODEL_TOO_LARGE', `${count} parameters; the server takes at most ${maxParameters.toLocaleString('en')}`);
  layer.addWeight = function (name, shape, dtype, _initializer, _regularizer, trainable) {
    parameters += shape.reduce((a, b) => a * b, 1);
    if (parameters > maxParameters) throw tooLarge(`at least ${parameters.toLocaleString('en')}`);
    const variable = addWeight.call(this, name, [], dtype, tfl.initializers.zeros(), undefined, trainable);
    shapes.set(variable, shape);
    return variable;
  };
  let building: Promise<tfl.LayersModel>;
  try {
    building = buildModel(spec, schema, 0);
  } finally {
    layer.addWeight = addWeight;
  }
  let model: tfl.LayersModel;
  try {
    model = await building;
  } catch (error) {
    for (const variable of shapes.keys()) variable.dispose();
    // buildModel reports a failed topology as MODEL_MALFORMED, the cap's error included.
    if (parameters > maxParameters) throw tooLarge(`at least ${parameters.toLocaleString('en')}`);
    throw error instanceof TributaryError ? error : new TributaryError('MODEL_MALFORMED', (error as Error).message);
  }
  const weights = model.weights.map((w) => ({ name: w.originalName, shape: shapes.get(w) ?? w.shape.map(Number) }));
  const outline: ModelOutline = {
    parameters: weights.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0),
    inputShapes: model.inputs.map((t) => [...t.shape]),
    outputShapes: model.outputs.map((t) => [...t.shape]),
    weights,
  };
  model.dispose();
  if (outline.parameters > maxParameters) throw tooLarge(outline.parameters.toLocaleString('en'));
  return outline;
}
