import { TributaryError } from '../errors.ts';
import { featureColumns, featureCount, labelColumn, vocabularySize, type DataSchema, type ImageSchema, type TabularSchema, type TextSchema } from './schema.ts';
import type { LabelledSet } from './dataset.ts';

/**
 * Raw samples as a device holds them, turned into the features and labels the schema
 * defines. Every function checks as it goes and names the first bad sample, so a user
 * with a broken file learns which row to fix.
 */

/** A table row, as a CSV parser or a JSON file gives it: values by column name. */
export type Row = Record<string, unknown>;

/** An image sample: h × w × c values in 0–255 (row-major, channels last), and its label (index or name). */
export interface ImageSample {
  pixels: ArrayLike<number>;
  label: number | string;
}

function fail(code: 'DATA_COLUMNS_MISSING' | 'DATA_VALUE_INVALID' | 'DATA_WRONG_SHAPE' | 'DATA_EMPTY', detail: string): never {
  throw new TributaryError(code, detail);
}

/** A numeric cell: a number, or a string that is one (CSV cells arrive as text). */
function numericCell(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value.trim() !== '') return Number(value);
  return Number.NaN;
}

/** Table rows as features (numeric columns scaled by their range and clamped, categories one-hot) and labels. */
export function encodeRows(schema: TabularSchema, rows: readonly Row[]): LabelledSet {
  if (rows.length === 0) fail('DATA_EMPTY', 'no rows');
  const columns = featureColumns(schema);
  const label = labelColumn(schema);
  const features = featureCount(schema);
  const x = new Float32Array(rows.length * features);
  const y = label.type === 'numeric' ? new Float32Array(rows.length) : new Int32Array(rows.length);
  const missing = schema.columns.filter((c) => !(c.name in rows[0]!)).map((c) => c.name);
  if (missing.length > 0) fail('DATA_COLUMNS_MISSING', `row 1 has no column ${missing.map((m) => `"${m}"`).join(', ')} (it has ${Object.keys(rows[0]!).map((k) => `"${k}"`).join(', ')})`);
  rows.forEach((row, r) => {
    const where = (name: string) => `row ${r + 1}, column "${name}"`;
    const value = (name: string): unknown => {
      if (!(name in row)) fail('DATA_COLUMNS_MISSING', `row ${r + 1} has no column "${name}"`);
      return row[name];
    };
    let offset = r * features;
    for (const column of columns) {
      const raw = value(column.name);
      if (column.type === 'numeric') {
        const v = numericCell(raw);
        if (!Number.isFinite(v)) fail('DATA_VALUE_INVALID', `${where(column.name)}: ${JSON.stringify(raw)} is not a number`);
        x[offset++] = Math.min(1, Math.max(0, (v - column.min) / (column.max - column.min)));
      } else {
        const index = column.categories.indexOf(String(raw));
        if (index < 0) fail('DATA_VALUE_INVALID', `${where(column.name)}: ${JSON.stringify(raw)} is not one of ${column.categories.join(', ')}`);
        x[offset + index] = 1;
        offset += column.categories.length;
      }
    }
    const raw = value(label.name);
    if (label.type === 'numeric') {
      const v = numericCell(raw);
      if (!Number.isFinite(v)) fail('DATA_VALUE_INVALID', `${where(label.name)}: ${JSON.stringify(raw)} is not a number`);
      y[r] = (v - label.min) / (label.max - label.min);
    } else {
      const index = label.categories.indexOf(String(raw));
      if (index < 0) fail('DATA_VALUE_INVALID', `${where(label.name)}: ${JSON.stringify(raw)} is not one of ${label.categories.join(', ')}`);
      y[r] = index;
    }
  });
  return { x, y, n: rows.length, features };
}

/** Character tokens: 1 + the character's place in the vocabulary, 0 for any other character. */
export function tokenize(schema: TextSchema, text: string): Int32Array {
  const index = new Map([...schema.vocabulary].map((c, i) => [c, i + 1]));
  const chars = [...text];
  return Int32Array.from(chars, (c) => index.get(c) ?? 0);
}

/**
 * Text as next-token samples: each window of sequenceLength tokens (windows `stride` apart)
 * and the token after it.
 */
export function encodeText(schema: TextSchema, text: string): LabelledSet {
  const tokens = tokenize(schema, text);
  const length = schema.sequenceLength;
  const n = tokens.length > length ? Math.floor((tokens.length - length - 1) / schema.stride) + 1 : 0;
  if (n === 0) fail('DATA_EMPTY', `${tokens.length} characters; at least ${length + 1} make one sample`);
  if (vocabularySize(schema) > 2 ** 24) fail('DATA_VALUE_INVALID', 'vocabulary too large for float32 token ids');
  const x = new Float32Array(n * length);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const start = i * schema.stride;
    for (let t = 0; t < length; t++) x[i * length + t] = tokens[start + t]!;
    y[i] = tokens[start + length]!;
  }
  return { x, y, n, features: length };
}

/** A label given by index or by name, checked against the schema's labels. */
export function labelIndex(labels: readonly string[], label: number | string, where: string): number {
  const index = typeof label === 'number' ? label : labels.indexOf(label);
  if (!Number.isInteger(index) || index < 0 || index >= labels.length) fail('DATA_VALUE_INVALID', `${where}: label ${JSON.stringify(label)} is not one of ${labels.join(', ')} (or 0–${labels.length - 1})`);
  return index;
}

/** Images already at the schema's size, 0–255 values, scaled to [0, 1]. */
export function encodeImages(schema: ImageSchema, samples: readonly ImageSample[]): LabelledSet {
  if (samples.length === 0) fail('DATA_EMPTY', 'no images');
  const features = featureCount(schema);
  const x = new Float32Array(samples.length * features);
  const y = new Int32Array(samples.length);
  samples.forEach((sample, i) => {
    const where = `image ${i + 1}`;
    if (sample.pixels.length !== features) fail('DATA_WRONG_SHAPE', `${where} has ${sample.pixels.length} values; ${schema.height}×${schema.width}×${schema.channels} = ${features} expected`);
    for (let p = 0; p < features; p++) {
      const v = sample.pixels[p]!;
      if (!(v >= 0 && v <= 255)) fail('DATA_VALUE_INVALID', `${where}, value ${p}: ${v} is outside 0–255`);
      x[i * features + p] = v / 255;
    }
    y[i] = labelIndex(schema.labels, sample.label, where);
  });
  return { x, y, n: samples.length, features };
}

/** Raw samples of any kind, by the schema: rows for tables, a string for text, images for images. */
export type RawSamples = readonly Row[] | string | readonly ImageSample[];

export function encodeSamples(schema: DataSchema, samples: RawSamples): LabelledSet {
  if (schema.kind === 'text') {
    if (typeof samples !== 'string') fail('DATA_VALUE_INVALID', 'a text task takes its data as one string');
    return encodeText(schema, samples);
  }
  if (typeof samples === 'string') fail('DATA_VALUE_INVALID', `a ${schema.kind} task takes an array of samples, not a string`);
  return schema.kind === 'tabular' ? encodeRows(schema, samples as readonly Row[]) : encodeImages(schema, samples as readonly ImageSample[]);
}
