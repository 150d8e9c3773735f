import { Type, type Static } from 'typebox';

/**
 * A TF.js Layers model as a user uploads it to create a task: the `model.json` that
 * `tensorflowjs_converter` (from Keras) or `model.save()` (TF.js) writes, and the bytes of
 * the weight files its manifest lists. The server checks both (server/models/), stores
 * only the topology in the task and keeps the weights as the model's round 0.
 */
export const ModelUpload = Type.Object(
  {
    kind: Type.Literal('layers'),
    /** The parsed model.json: `{ modelTopology, weightsManifest?, format?, … }`. */
    modelJson: Type.Record(Type.String(), Type.Unknown()),
    /**
     * The weight files the manifest lists, concatenated in manifest order (model.save
     * writes one, weights.bin; the converter shards), base64. Without it the model
     * starts from its layers' initializers.
     */
    weights: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type ModelUpload = Static<typeof ModelUpload>;

/** The largest model the server accepts (MODEL_TOO_LARGE beyond). */
export const MODEL_LIMITS = {
  modelJsonBytes: 2 * 1024 * 1024,
  weightsBytes: 64 * 1024 * 1024,
  parameters: 20_000_000,
} as const;

/** Characters of the base64 text of `bytes` bytes. */
export function base64Length(bytes: number): number {
  return 4 * Math.ceil(bytes / 3);
}

/** An upload, as opposed to a stored model spec (`{ kind: 'layers', topology }` or a built-in). */
export function isModelUpload(model: object): model is ModelUpload {
  return 'modelJson' in model;
}

/** The weight files a model.json's manifest lists, in the order their bytes are concatenated; [] without a manifest. */
export function weightPathsOf(modelJson: unknown): string[] {
  const manifest = (modelJson as { weightsManifest?: unknown } | null)?.weightsManifest;
  if (!Array.isArray(manifest)) return [];
  return manifest.flatMap((group: { paths?: unknown }) => (Array.isArray(group?.paths) ? group.paths.filter((p): p is string => typeof p === 'string') : []));
}
