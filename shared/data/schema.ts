import { Type, type Static } from 'typebox';
import { TributaryError } from '../errors.ts';

/**
 * What a task's data looks like on the devices that hold it. The schema decides everything
 * downstream: how a device turns its raw samples into features, the model's input and
 * output shapes, the loss and the metrics. One TypeBox schema validates REST, storage,
 * socket messages and the SDK; nothing in the round engine reads more of it than this module says.
 */

const Name = Type.String({ minLength: 1, maxLength: 200 });

/** Images of height × width × channels, resized and scaled to [0, 1] on the device. */
export const ImageSchema = Type.Object(
  {
    kind: Type.Literal('image'),
    height: Type.Integer({ minimum: 1, maximum: 1024 }),
    width: Type.Integer({ minimum: 1, maximum: 1024 }),
    channels: Type.Union([Type.Literal(1), Type.Literal(3)]),
    /** Class names, by label index. */
    labels: Type.Array(Name, { minItems: 2, maxItems: 1000 }),
  },
  { additionalProperties: false },
);

/**
 * A numeric column, scaled to [0, 1] by the range the operator declares (a data
 * dictionary's range, known without pooling anyone's rows) and clamped there.
 */
export const NumericColumn = Type.Object(
  { name: Name, type: Type.Literal('numeric'), min: Type.Number(), max: Type.Number() },
  { additionalProperties: false },
);
/** A categorical column, one-hot encoded over the categories the schema lists. */
export const CategoricalColumn = Type.Object(
  { name: Name, type: Type.Literal('categorical'), categories: Type.Array(Name, { minItems: 1, maxItems: 1000 }) },
  { additionalProperties: false },
);
export const Column = Type.Union([NumericColumn, CategoricalColumn]);
export type Column = Static<typeof Column>;

/**
 * Rows of typed columns; `label` names the column to predict. A categorical label of two
 * categories makes a binary task, of more a multi-class one; a numeric label, regression.
 */
export const TabularSchema = Type.Object(
  {
    kind: Type.Literal('tabular'),
    columns: Type.Array(Column, { minItems: 2, maxItems: 1000 }),
    label: Name,
  },
  { additionalProperties: false },
);

/**
 * Text for next-token prediction: character tokens over `vocabulary` (token 0 stands for any
 * character outside it), windows of `sequenceLength` tokens predicting the one that follows.
 */
export const TextSchema = Type.Object(
  {
    kind: Type.Literal('text'),
    tokenizer: Type.Literal('char'),
    vocabulary: Type.String({ minLength: 2, maxLength: 1000 }),
    sequenceLength: Type.Integer({ minimum: 1, maximum: 1024 }),
    /** Tokens between the starts of consecutive windows. */
    stride: Type.Integer({ minimum: 1, maximum: 1024 }),
  },
  { additionalProperties: false },
);

export const DataSchema = Type.Union([ImageSchema, TabularSchema, TextSchema]);
export type DataSchema = Static<typeof DataSchema>;
export type ImageSchema = Static<typeof ImageSchema>;
export type TabularSchema = Static<typeof TabularSchema>;
export type TextSchema = Static<typeof TextSchema>;

/** What the model predicts, which picks the loss and the metrics. */
export type Target = 'multiclass' | 'binary' | 'regression' | 'next-token';

/** The label column of a tabular schema. */
export function labelColumn(schema: TabularSchema): Column {
  const column = schema.columns.find((c) => c.name === schema.label);
  if (!column) throw new TributaryError('SCHEMA_INVALID', `label column "${schema.label}" is not among the columns`);
  return column;
}

/** The columns a tabular model reads: all but the label, in schema order. */
export function featureColumns(schema: TabularSchema): Column[] {
  return schema.columns.filter((c) => c.name !== schema.label);
}

export function targetOf(schema: DataSchema): Target {
  switch (schema.kind) {
    case 'image':
      return 'multiclass';
    case 'text':
      return 'next-token';
    case 'tabular': {
      const label = labelColumn(schema);
      if (label.type === 'numeric') return 'regression';
      return label.categories.length === 2 ? 'binary' : 'multiclass';
    }
  }
}

/** Values per sample, as the device encodes them (one-hot categories count one each). */
export function featureCount(schema: DataSchema): number {
  switch (schema.kind) {
    case 'image':
      return schema.height * schema.width * schema.channels;
    case 'text':
      return schema.sequenceLength;
    case 'tabular':
      return featureColumns(schema).reduce((n, c) => n + (c.type === 'numeric' ? 1 : c.categories.length), 0);
  }
}

/** The model's input shape, without the batch dimension: images h × w × c, text one-hot tokens (sequence × vocabulary), tables a vector. */
export function inputShapeOf(schema: DataSchema): number[] {
  if (schema.kind === 'image') return [schema.height, schema.width, schema.channels];
  if (schema.kind === 'text') return [schema.sequenceLength, vocabularySize(schema)];
  return [featureCount(schema)];
}

/** Text: how many tokens there are, the unknown-character token 0 included. */
export function vocabularySize(schema: TextSchema): number {
  return [...schema.vocabulary].length + 1;
}

/** Classes a classifier chooses among; 1 for binary (one sigmoid unit) and regression. */
export function outputUnitsOf(schema: DataSchema): number {
  switch (schema.kind) {
    case 'image':
      return schema.labels.length;
    case 'text':
      return vocabularySize(schema);
    case 'tabular': {
      const label = labelColumn(schema);
      return label.type === 'categorical' && label.categories.length > 2 ? label.categories.length : 1;
    }
  }
}

/** Label names by index, where labels are classes (for previews and confusion tables). */
export function classNamesOf(schema: DataSchema): string[] | undefined {
  if (schema.kind === 'image') return schema.labels;
  if (schema.kind === 'text') return undefined;
  const label = labelColumn(schema);
  return label.type === 'categorical' ? label.categories : undefined;
}

/** Checks what the TypeBox schema cannot say: names unique, ranges ordered, the label present, categories distinct. */
export function checkDataSchema(schema: DataSchema): void {
  const fail = (detail: string): never => {
    throw new TributaryError('SCHEMA_INVALID', detail);
  };
  const distinct = (values: readonly string[], what: string) => {
    const seen = new Set<string>();
    for (const v of values) {
      if (seen.has(v)) fail(`${what} "${v}" appears twice`);
      seen.add(v);
    }
  };
  if (schema.kind === 'image') distinct(schema.labels, 'label');
  if (schema.kind === 'text') distinct([...schema.vocabulary], 'vocabulary character');
  if (schema.kind === 'tabular') {
    distinct(schema.columns.map((c) => c.name), 'column');
    for (const c of schema.columns) {
      if (c.type === 'numeric' && !(Number.isFinite(c.min) && Number.isFinite(c.max) && c.min < c.max)) fail(`column "${c.name}" needs finite min < max, got ${c.min} and ${c.max}`);
      if (c.type === 'categorical') distinct(c.categories, `category of "${c.name}"`);
    }
    const label = labelColumn(schema);
    if (label.type === 'categorical' && label.categories.length < 2) fail(`label column "${label.name}" needs at least 2 categories`);
    if (featureColumns(schema).length === 0) fail('no column besides the label');
  }
  if (featureCount(schema) > 4_000_000) fail(`${featureCount(schema)} features per sample; at most 4,000,000`);
}
