import { TributaryError } from '../errors.ts';
import { createRng, deriveSeed, sampleDirichlet, shuffleInPlace, type Rng } from '../random.ts';

import type { PartitionSpec } from '../protocol/task.ts';

/** Cutting a training set into shards as a task's partition says (heavy shards for GPU nodes, light ones for browsers). */

/** A plain decimal number (no hex, Infinity or whitespace, which Number() would accept). */
const DECIMAL = /^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** The smallest shard NIID-Bench accepts before it resamples the proportions. */
const MIN_SHARD_SIZE = 10;
/** Each attempt costs only classes × shards gamma draws, so this is cheap even when all fail. */
const MAX_DIRICHLET_ATTEMPTS = 1000;

/** `iid`, `dirichlet:<alpha>` (alpha a positive decimal) or `sizes:<w1>,<w2>,…` (relative shard sizes). */
export function parsePartition(text: string): PartitionSpec {
  const trimmed = text.trim();
  if (trimmed === 'iid') return { kind: 'iid' };
  if (trimmed === 'source') return { kind: 'source' };
  if (trimmed.startsWith('sizes:')) {
    const parts = trimmed.slice('sizes:'.length).split(',');
    const sizes = parts.map(Number);
    if (parts.every((p) => DECIMAL.test(p)) && sizes.length > 0 && sizes.every((w) => w > 0 && Number.isFinite(w))) return { kind: 'sizes', sizes };
    throw new TributaryError('BAD_REQUEST', `shard sizes must be positive numbers, got "${trimmed}"`);
  }
  if (trimmed.startsWith('dirichlet:')) {
    const raw = trimmed.slice('dirichlet:'.length);
    const alpha = Number(raw);
    if (DECIMAL.test(raw) && Number.isFinite(alpha) && alpha > 0) return { kind: 'dirichlet', alpha };
    throw new TributaryError('BAD_REQUEST', `Dirichlet alpha must be a positive number, got "${raw}"`);
  }
  throw new TributaryError('BAD_REQUEST', `unknown partition "${text}": use "iid", "source", "dirichlet:<alpha>" or "sizes:<w1>,<w2>,…"`);
}

export function formatPartition(spec: PartitionSpec): string {
  if (spec.kind === 'iid' || spec.kind === 'source') return spec.kind;
  return spec.kind === 'dirichlet' ? `dirichlet:${spec.alpha}` : `sizes:${spec.sizes.join(',')}`;
}

/** Shards of planned sizes from largest to smallest (heavy shards go to high-capacity nodes); undefined when sizes are not planned. */
export function shardsBySize(spec: PartitionSpec, shards: number): number[] | undefined {
  if (spec.kind !== 'sizes') return undefined;
  return Array.from({ length: shards }, (_, i) => i).sort((a, b) => (spec.sizes[b] ?? 0) - (spec.sizes[a] ?? 0) || a - b);
}

/**
 * Sample indices for each shard: every index lands in exactly one shard, and each shard
 * is sorted ascending. Deterministic in `seed`. A by-source split needs `sources`, each
 * sample's source.
 */
export function partitionIndices(
  labels: ArrayLike<number>,
  numClasses: number,
  shards: number,
  spec: PartitionSpec,
  seed: number,
  sources?: ArrayLike<number>,
): number[][] {
  if (!Number.isInteger(shards) || shards < 1) {
    throw new TributaryError('BAD_REQUEST', `shards must be a positive integer, got ${shards}`);
  }
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new TributaryError('BAD_REQUEST', `numClasses must be a positive integer, got ${numClasses}`);
  }
  // A stream of its own, so other uses of the task seed do not correlate with the split.
  const rng = createRng(deriveSeed('partition', seed));
  let parts: number[][];
  if (spec.kind === 'iid') {
    parts = splitIid(labels.length, shards, rng);
  } else if (spec.kind === 'source') {
    if (!sources) throw new TributaryError('BAD_REQUEST', 'this data set has no sources to split by');
    parts = splitBySource(sources, shards, rng);
  } else if (spec.kind === 'sizes') {
    if (spec.sizes.length !== shards) throw new TributaryError('BAD_REQUEST', `${spec.sizes.length} shard sizes for ${shards} shards`);
    parts = splitSized(labels.length, spec.sizes, rng);
  } else {
    if (!(spec.alpha > 0) || !Number.isFinite(spec.alpha)) {
      throw new TributaryError('BAD_REQUEST', `Dirichlet alpha must be positive and finite, got ${spec.alpha}`);
    }
    parts = splitDirichlet(labels, numClasses, shards, spec.alpha, rng);
  }
  for (const part of parts) part.sort((a, b) => a - b);
  return parts;
}

function splitIid(n: number, shards: number, rng: Rng): number[][] {
  const order = shuffleInPlace(Array.from({ length: n }, (_, i) => i), rng);
  const base = Math.floor(n / shards);
  const extra = n % shards;
  const parts: number[][] = [];
  let start = 0;
  for (let s = 0; s < shards; s++) {
    const size = base + (s < extra ? 1 : 0);
    parts.push(order.slice(start, start + size));
    start += size;
  }
  return parts;
}

/**
 * Shards that never mix sources: each source gets shards in proportion to its size (at
 * least one, largest remainders first), its samples dealt among them at random. With
 * fewer shards than sources, the smallest sources share the last shard.
 */
function splitBySource(sources: ArrayLike<number>, shards: number, rng: Rng): number[][] {
  const bySource = new Map<number, number[]>();
  for (let i = 0; i < sources.length; i++) {
    const members = bySource.get(sources[i]!) ?? [];
    members.push(i);
    bySource.set(sources[i]!, members);
  }
  const groups = [...bySource.values()].sort((a, b) => b.length - a.length);
  if (shards < groups.length) {
    const merged = groups.slice(0, shards - 1);
    merged.push(groups.slice(shards - 1).flat());
    return merged;
  }
  const total = sources.length;
  const quota = groups.map((g) => Math.max(1, Math.floor((g.length / total) * shards)));
  let left = shards - quota.reduce((a, b) => a + b, 0);
  const remainders = groups.map((g, i) => ({ i, r: (g.length / total) * shards - quota[i]! })).sort((a, b) => b.r - a.r);
  for (let k = 0; left > 0; k = (k + 1) % remainders.length, left--) quota[remainders[k]!.i]!++;
  for (let k = groups.length - 1; left < 0; k = (k + groups.length - 1) % groups.length) {
    if (quota[k]! > 1) {
      quota[k]!--;
      left++;
    }
  }
  return groups.flatMap((g, i) => splitIid(g.length, quota[i]!, rng).map((part) => part.map((j) => g[j]!)));
}

/** A random split into shards whose sizes follow the given weights (each gets at least one sample). */
function splitSized(n: number, weights: readonly number[], rng: Rng): number[][] {
  const order = shuffleInPlace(Array.from({ length: n }, (_, i) => i), rng);
  const total = weights.reduce((a, b) => a + b, 0);
  const parts: number[][] = [];
  let cumulative = 0;
  let start = 0;
  weights.forEach((w, s) => {
    cumulative += w;
    const remainingShards = weights.length - s - 1;
    const end = s === weights.length - 1 ? n : Math.min(n - remainingShards, Math.max(start + 1, Math.round((cumulative / total) * n)));
    parts.push(order.slice(start, end));
    start = end;
  });
  return parts;
}

/**
 * NIID-Bench label skew (Li et al. 2021): each class is split among the shards in
 * proportions drawn from Dir(alpha), resampled until every shard has a minimum size.
 * If no draw within the attempt budget achieves that (tiny alpha with more shards than
 * classes can make it practically impossible), the best draw is topped up from the
 * largest shards so no client is left (nearly) empty.
 */
function splitDirichlet(
  labels: ArrayLike<number>,
  numClasses: number,
  shards: number,
  alpha: number,
  rng: Rng,
): number[][] {
  const n = labels.length;
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < n; i++) {
    const label = labels[i]!;
    if (!Number.isInteger(label) || label < 0 || label >= numClasses) {
      throw new TributaryError('DATA_MALFORMED', `label ${label} at ${i} is outside 0..${numClasses - 1}`);
    }
    byClass[label]!.push(i);
  }
  for (const members of byClass) shuffleInPlace(members, rng);

  const minSize = Math.min(MIN_SHARD_SIZE, Math.floor(n / shards));
  // counts[c · shards + s]: how many of class c go to shard s.
  const counts = new Int32Array(numClasses * shards);
  const best = new Int32Array(numClasses * shards);
  const sizes = new Int32Array(shards);
  let bestMin = -1;
  for (let attempt = 0; attempt < MAX_DIRICHLET_ATTEMPTS; attempt++) {
    sizes.fill(0);
    for (let c = 0; c < numClasses; c++) {
      const p = sampleDirichlet(alpha, shards, rng);
      const m = byClass[c]!.length;
      // Rounding cumulative boundaries keeps the per-class counts summing to m exactly.
      let cumulative = 0;
      let prev = 0;
      for (let s = 0; s < shards; s++) {
        cumulative += p[s]!;
        const end = s === shards - 1 ? m : Math.min(m, Math.max(prev, Math.round(cumulative * m)));
        counts[c * shards + s] = end - prev;
        sizes[s] = sizes[s]! + end - prev;
        prev = end;
      }
    }
    let smallest = sizes[0]!;
    for (let s = 1; s < shards; s++) if (sizes[s]! < smallest) smallest = sizes[s]!;
    if (smallest > bestMin) {
      bestMin = smallest;
      best.set(counts);
    }
    if (smallest >= minSize) break;
  }

  const parts: number[][] = Array.from({ length: shards }, () => []);
  for (let c = 0; c < numClasses; c++) {
    const members = byClass[c]!;
    let start = 0;
    for (let s = 0; s < shards; s++) {
      const count = best[c * shards + s]!;
      const part = parts[s]!;
      for (let k = start; k < start + count; k++) part.push(members[k]!);
      start += count;
    }
  }
  if (bestMin < minSize) topUp(parts, minSize, rng);
  return parts;
}

/**
 * Moves random samples from the largest shard to the smallest until all reach minSize.
 * Terminates because minSize ≤ n / shards: while one shard is short, another is over.
 */
function topUp(parts: number[][], minSize: number, rng: Rng): void {
  for (;;) {
    let smallest = 0;
    let largest = 0;
    for (let s = 1; s < parts.length; s++) {
      if (parts[s]!.length < parts[smallest]!.length) smallest = s;
      if (parts[s]!.length > parts[largest]!.length) largest = s;
    }
    if (parts[smallest]!.length >= minSize) return;
    const donor = parts[largest]!;
    const j = Math.floor(rng.next() * donor.length);
    const last = donor.length - 1;
    const moved = donor[j]!;
    donor[j] = donor[last]!;
    donor.pop();
    parts[smallest]!.push(moved);
  }
}
