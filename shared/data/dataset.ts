import { TributaryError } from '../errors.ts';
import type { IdxArray } from './idx.ts';

/** A labelled image set as the trainer and evaluator use it: pixels scaled to [0, 1]. */
export interface LabelledSet {
  /** n × features, row-major. */
  x: Float32Array;
  y: Int32Array;
  n: number;
  features: number;
}

/** Pairs an IDX image file with its label file, keeping the first `limit` samples (0: all). */
export function toLabelledSet(images: IdxArray, labels: IdxArray, limit = 0): LabelledSet {
  const total = images.dims[0] ?? 0;
  if (labels.dims[0] !== total) {
    throw new TributaryError('DATA_MALFORMED', `${total} images but ${labels.dims[0]} labels`);
  }
  const n = limit > 0 ? Math.min(limit, total) : total;
  const features = images.dims.slice(1).reduce((a, b) => a * b, 1);
  const x = new Float32Array(n * features);
  for (let i = 0; i < x.length; i++) x[i] = images.data[i]! / 255;
  return { x, y: Int32Array.from(labels.data.subarray(0, n)), n, features };
}

/** The rows at `indices`, copied into a new set. */
export function selectRows(set: LabelledSet, indices: readonly number[]): LabelledSet {
  const { features } = set;
  const x = new Float32Array(indices.length * features);
  const y = new Int32Array(indices.length);
  indices.forEach((row, i) => {
    x.set(set.x.subarray(row * features, (row + 1) * features), i * features);
    y[i] = set.y[row]!;
  });
  return { x, y, n: indices.length, features };
}
