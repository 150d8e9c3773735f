import type { LabelledSet } from '../shared/data/dataset.ts';
import { encodeSamples, type ImageSample, type RawSamples, type Row } from '../shared/data/encode.ts';
import { TributaryError } from '../shared/errors.ts';
import type { TaskRecord } from '../shared/protocol/task.ts';

/** One raw sample of any schema kind: a table row, an image, or a piece of text. */
export type RawSample = Row | ImageSample | string;

/** Where a client's training data comes from, once it knows its task (and demo shard). */
export type DataProvider = (context: { task: TaskRecord; shard: number | null }) => Promise<LabelledSet>;

/**
 * What the SDK's `data` option takes: encoded samples from a provider, or the device's raw
 * samples (table rows, images of the schema's size, or text), as an array or an async
 * iterable (a stream of rows, say). Raw samples are checked against the task's schema and
 * the first bad one is named.
 */
export type DataInput = DataProvider | RawSamples | AsyncIterable<RawSample>;

/** Most raw samples a client collects from an async iterable: beyond it the device runs out of memory before it trains. */
export const MAX_SAMPLES = 10_000_000;

function isAsyncIterable(value: unknown): value is AsyncIterable<RawSample> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

/** The device's data, encoded by the task's schema. */
export async function resolveData(input: DataInput, context: { task: TaskRecord; shard: number | null }): Promise<LabelledSet> {
  if (typeof input === 'function') return input(context);
  const schema = context.task.spec.data;
  if (!isAsyncIterable(input)) return encodeSamples(schema, input);
  const samples: RawSample[] = [];
  for await (const sample of input) {
    if (samples.length >= MAX_SAMPLES) throw new TributaryError('DATA_VALUE_INVALID', `more than ${MAX_SAMPLES} samples`);
    samples.push(sample);
  }
  // Text arrives in pieces; rows and images one by one.
  if (schema.kind === 'text') return encodeSamples(schema, samples.map(String).join(''));
  return encodeSamples(schema, samples as Row[] | ImageSample[]);
}
