import { Type, type Static } from 'typebox';

/**
 * The model a task trains: a built-in architecture whose input and output follow the
 * task's data schema, or a TF.js Layers topology the user uploaded (what
 * `tensorflowjs_converter` writes from Keras and `model.save()` from TF.js).
 */

const Units = Type.Integer({ minimum: 1, maximum: 4096 });

/** Dense layers (ReLU) between the flattened input and the output: images, tables, or text windows. */
export const MlpModel = Type.Object(
  { kind: Type.Literal('mlp'), hidden: Type.Array(Units, { maxItems: 8 }) },
  { additionalProperties: false },
);
/** Images: 3×3 convolutions (ReLU), each followed by 2×2 max pooling, then one dense layer. */
export const CnnModel = Type.Object(
  { kind: Type.Literal('cnn'), filters: Type.Array(Units, { minItems: 1, maxItems: 4 }), dense: Units },
  { additionalProperties: false },
);
/** Text: a token embedding (a projection of the one-hot tokens) read by a GRU, whose last state predicts the next token. */
export const GruModel = Type.Object(
  { kind: Type.Literal('gru'), embedding: Units, units: Units },
  { additionalProperties: false },
);
/** An uploaded TF.js Layers model: its `modelTopology`, checked at upload (server/models/). */
export const LayersModelSpec = Type.Object(
  { kind: Type.Literal('layers'), topology: Type.Record(Type.String(), Type.Unknown()) },
  { additionalProperties: false },
);

export const ModelSpec = Type.Union([MlpModel, CnnModel, GruModel, LayersModelSpec]);
export type ModelSpec = Static<typeof ModelSpec>;
export type ModelKind = ModelSpec['kind'];

/** The built-in architectures (uploads are `layers`), for CLI and form choices. */
export const MODEL_KINDS = ['mlp', 'cnn', 'gru'] as const;

/** Each built-in architecture's options where a task does not give its own. */
export const DEFAULT_MODELS = {
  mlp: { kind: 'mlp', hidden: [200, 200] },
  cnn: { kind: 'cnn', filters: [16, 32], dense: 64 },
  gru: { kind: 'gru', embedding: 16, units: 64 },
} as const satisfies Record<(typeof MODEL_KINDS)[number], ModelSpec>;
