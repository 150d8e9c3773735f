import type { DataSchema } from '../../shared/data/schema.ts';
import { TributaryError } from '../../shared/errors.ts';
import type { ModelSpec } from '../../shared/ml/model-spec.ts';
import { base64Length, isModelUpload, MODEL_LIMITS, type ModelUpload } from '../../shared/protocol/model-upload.ts';
import { checkModelFits } from './model-fits.ts';
import { validateUpload, type AcceptedModel } from './validate-upload.ts';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict base64 (Node's decoder skips characters it does not know, which would shift every weight after them). */
function weightBytes(base64: string): Uint8Array {
  // Checked before decoding: the body limit leaves room for the rest of the request too.
  if (base64.length > base64Length(MODEL_LIMITS.weightsBytes)) {
    throw new TributaryError('MODEL_TOO_LARGE', `the weights are over ${MODEL_LIMITS.weightsBytes / 1024 / 1024} MiB`);
  }
  if (base64.length % 4 !== 0 || !BASE64.test(base64)) throw new TributaryError('MODEL_MALFORMED', 'weights is not base64 text');
  return Buffer.from(base64, 'base64');
}

/**
 * A create-task request's model as the task will store it: an upload is validated
 * (server/models/validate-upload.ts) and gives its initial weights, a stored topology is
 * validated the same way, and a built-in architecture is built once, so that one which
 * does not suit the data, or is over the parameter cap, is refused before the task exists.
 */
export async function acceptModel(model: ModelSpec | ModelUpload, schema: DataSchema): Promise<AcceptedModel> {
  if (isModelUpload(model)) {
    return validateUpload({ modelJson: model.modelJson, weights: model.weights === undefined ? undefined : weightBytes(model.weights) }, schema);
  }
  if (model.kind === 'layers') return validateUpload({ modelJson: { modelTopology: model.topology } }, schema);
  await checkModelFits(model, schema);
  return { spec: model };
}
