import { inputShapeOf, outputUnitsOf, targetOf, type DataSchema } from '../../shared/data/schema.ts';
import { TributaryError } from '../../shared/errors.ts';
import type { ModelSpec } from '../../shared/ml/model-spec.ts';
import { MODEL_LIMITS } from '../../shared/protocol/model-upload.ts';
import { outlineModel, type ModelOutline } from './outline.ts';

const shapeText = (shape: ReadonlyArray<number | null>) => `[${shape.map((d) => d ?? 'any').join(', ')}]`;

/**
 * Refuses a task's model (built in or uploaded) that the server would not train: over the
 * parameter cap (MODEL_TOO_LARGE), or not one input of the schema's shape and one output of
 * its units, batches of any size (MODEL_SHAPE_MISMATCH, with both shapes). Built-in
 * architectures that do not suit the data kind are refused by their builder.
 */
export async function checkModelFits(model: ModelSpec, schema: DataSchema): Promise<ModelOutline> {
  const outline = await outlineModel(model, schema, MODEL_LIMITS.parameters);
  const mismatch = (detail: string) => new TributaryError('MODEL_SHAPE_MISMATCH', detail);
  const [input, output] = [outline.inputShapes, outline.outputShapes];
  if (input.length !== 1 || output.length !== 1) throw mismatch(`the model has ${input.length} inputs and ${output.length} outputs; a task's model has one of each`);
  const [batch, ...sample] = input[0]!;
  if (batch !== null) throw mismatch(`the model's input has a fixed batch size of ${batch}; devices train on batches of any size`);
  const expected = inputShapeOf(schema);
  if (shapeText(sample) !== shapeText(expected)) throw mismatch(`the model's input is ${shapeText(sample)} per sample, the ${schema.kind} schema gives ${shapeText(expected)}`);
  const units = outputUnitsOf(schema);
  const got = output[0]!.slice(1);
  if (shapeText(got) !== shapeText([units])) throw mismatch(`the model's output is ${shapeText(got)} per sample, the schema needs ${shapeText([units])} (${targetOf(schema)})`);
  return outline;
}
