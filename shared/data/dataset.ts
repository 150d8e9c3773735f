import { TributaryError } from '../errors.ts';
import type { IdxArray } from './idx.ts';

/** Samples as the trainer and evaluator use them: features encoded by the task's schema, and labels. */
export interface LabelledSet {
  /** n × features, row-major. */
  x: Float32Array;
  /** Class (or token) indices; regression targets scaled to [0, 1]. */
  y: Int32Array | Float32Array;
  n: number;
  features: number;
  /** Where each sample came from (an island, a topic file): what a by-source partition splits on. */
  sources?: Int32Array;
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
  const y = set.y instanceof Float32Array ? new Float32Array(indices.length) : new Int32Array(indices.length);
  const sources = set.sources && new Int32Array(indices.length);
  indices.forEach((row, i) => {
    x.set(set.x.subarray(row * features, (row + 1) * features), i * features);
    y[i] = set.y[row]!;
    if (sources) sources[i] = set.sources![row]!;
  });
  return { x, y, n: indices.length, features, ...(sources ? { sources } : {}) };
}

/** The first `limit` rows of `set` (0: all) as views of it: no copy. */
export function firstRows(set: LabelledSet, limit: number): LabelledSet {
  if (limit <= 0 || limit >= set.n) return set;
  const { features } = set;
  return { x: set.x.subarray(0, limit * features), y: set.y.subarray(0, limit), n: limit, features, ...(set.sources ? { sources: set.sources.subarray(0, limit) } : {}) };
}

/** Sets of the same features as one (a device's files, say). */
export function concatSets(sets: readonly LabelledSet[]): LabelledSet {
  const first = sets[0];
  if (!first) throw new TributaryError('DATA_EMPTY', 'no samples');
  const features = first.features;
  for (const s of sets) if (s.features !== features) throw new TributaryError('DATA_WRONG_SHAPE', `${s.features} vs ${features} features`);
  const n = sets.reduce((a, s) => a + s.n, 0);
  const x = new Float32Array(n * features);
  const y = first.y instanceof Float32Array ? new Float32Array(n) : new Int32Array(n);
  let row = 0;
  for (const s of sets) {
    x.set(s.x, row * features);
    y.set(s.y, row);
    row += s.n;
  }
  return { x, y, n, features };
}

/**
 * A device's split of its own samples: a seeded `fraction` held out for federated
 * evaluation, the rest trained on. Every sample lands in exactly one part.
 */
export function holdOut(set: LabelledSet, fraction: number, seed: number): { train: LabelledSet; test: LabelledSet | undefined } {
  const held = Math.floor(set.n * fraction);
  if (held === 0 || held >= set.n) return { train: set, test: undefined };
  // A multiplicative hash orders rows the same way for the same seed, without an RNG state to carry.
  const order = Array.from({ length: set.n }, (_, i) => i).sort((a, b) => mix(a, seed) - mix(b, seed) || a - b);
  const test = order.slice(0, held).sort((a, b) => a - b);
  const train = order.slice(held).sort((a, b) => a - b);
  return { train: selectRows(set, train), test: selectRows(set, test) };
}

function mix(i: number, seed: number): number {
  let h = (i ^ seed) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}
