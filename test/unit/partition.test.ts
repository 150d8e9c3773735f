import { describe, expect, it } from 'vitest';
import { TributaryError } from '../../shared/errors.ts';
import { formatPartition, parsePartition, partitionIndices } from '../../shared/data/partition.ts';
import { createRng } from '../../shared/random.ts';

const NUM_CLASSES = 10;

/** 3,000 labels, 300 per class, in a shuffled order. */
function makeLabels(n = 3000): Int32Array {
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = i % NUM_CLASSES;
  const rng = createRng(1);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [labels[i], labels[j]] = [labels[j]!, labels[i]!];
  }
  return labels;
}

function expectExactCover(parts: number[][], n: number): void {
  const seen = new Uint8Array(n);
  for (const part of parts) {
    for (const i of part) {
      expect(Number.isInteger(i) && i >= 0 && i < n).toBe(true);
      seen[i]!++;
    }
  }
  expect(seen.every((c) => c === 1)).toBe(true);
}

function meanLabelEntropy(parts: number[][], labels: Int32Array): number {
  let total = 0;
  for (const part of parts) {
    const counts = new Array<number>(NUM_CLASSES).fill(0);
    for (const i of part) counts[labels[i]!]!++;
    let h = 0;
    for (const c of counts) if (c > 0) h -= (c / part.length) * Math.log2(c / part.length);
    total += h;
  }
  return total / parts.length;
}

describe('parsePartition / formatPartition', () => {
  it('accepts iid and dirichlet:<alpha>', () => {
    expect(parsePartition('iid')).toEqual({ kind: 'iid' });
    expect(parsePartition('dirichlet:0.5')).toEqual({ kind: 'dirichlet', alpha: 0.5 });
    expect(parsePartition(' dirichlet:100 ')).toEqual({ kind: 'dirichlet', alpha: 100 });
    expect(parsePartition('dirichlet:1e-2')).toEqual({ kind: 'dirichlet', alpha: 0.01 });
  });

  it.each(['', 'IID', 'dirichlet', 'dirichlet:', 'dirichlet:0', 'dirichlet:-1', 'dirichlet:abc', 'dirichlet:Infinity', 'dirichlet:0x10', 'dirichlet: 1', 'shards:3'])(
    'rejects %j with BAD_REQUEST',
    (text) => {
      expect(() => parsePartition(text)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
      expect(() => parsePartition(text)).toThrow(TributaryError);
    },
  );

  it('formats specs so that they parse back to themselves', () => {
    for (const spec of [{ kind: 'iid' } as const, { kind: 'dirichlet', alpha: 0.1 } as const, { kind: 'dirichlet', alpha: 1e-7 } as const]) {
      expect(parsePartition(formatPartition(spec))).toEqual(spec);
    }
    expect(formatPartition({ kind: 'dirichlet', alpha: 0.5 })).toBe('dirichlet:0.5');
  });
});

describe('partitionIndices', () => {
  const labels = makeLabels();

  it.each([{ kind: 'iid' } as const, { kind: 'dirichlet', alpha: 0.1 } as const, { kind: 'dirichlet', alpha: 10 } as const])(
    'keeps every index in exactly one shard ($kind $alpha)',
    (spec) => {
      const parts = partitionIndices(labels, NUM_CLASSES, 7, spec, 42);
      expect(parts).toHaveLength(7);
      expectExactCover(parts, labels.length);
    },
  );

  it('sorts each shard ascending', () => {
    for (const part of partitionIndices(labels, NUM_CLASSES, 5, { kind: 'dirichlet', alpha: 0.5 }, 3)) {
      for (let i = 1; i < part.length; i++) expect(part[i]!).toBeGreaterThan(part[i - 1]!);
    }
  });

  it('makes IID shard sizes differ by at most one', () => {
    const parts = partitionIndices(labels, NUM_CLASSES, 7, { kind: 'iid' }, 1);
    const sizes = parts.map((p) => p.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
  });

  it('is deterministic for a seed and differs for another seed', () => {
    for (const spec of [{ kind: 'iid' } as const, { kind: 'dirichlet', alpha: 0.5 } as const]) {
      const a = partitionIndices(labels, NUM_CLASSES, 10, spec, 9);
      expect(partitionIndices(labels, NUM_CLASSES, 10, spec, 9)).toEqual(a);
      expect(partitionIndices(labels, NUM_CLASSES, 10, spec, 10)).not.toEqual(a);
    }
  });

  it('skews labels more for smaller alpha', () => {
    const skewed = meanLabelEntropy(partitionIndices(labels, NUM_CLASSES, 10, { kind: 'dirichlet', alpha: 0.1 }, 5), labels);
    const balanced = meanLabelEntropy(partitionIndices(labels, NUM_CLASSES, 10, { kind: 'dirichlet', alpha: 100 }, 5), labels);
    const iid = meanLabelEntropy(partitionIndices(labels, NUM_CLASSES, 10, { kind: 'iid' }, 5), labels);
    expect(skewed).toBeLessThan(2);
    expect(balanced).toBeGreaterThan(3.2); // log2(10) ≈ 3.32 is perfectly balanced
    expect(iid).toBeGreaterThan(3.2);
    expect(skewed).toBeLessThan(balanced - 1);
  });

  it.each([
    [3000, 10, 0.1],
    [3000, 50, 0.05],
    [200, 40, 0.01],
    [45, 10, 0.1],
  ])('gives each of the shards at least min(10, n / shards) samples (n=%i, shards=%i, alpha=%f)', (n, shards, alpha) => {
    const few = makeLabels(n);
    const parts = partitionIndices(few, NUM_CLASSES, shards, { kind: 'dirichlet', alpha }, 8);
    expectExactCover(parts, n);
    const minSize = Math.min(10, Math.floor(n / shards));
    for (const part of parts) expect(part.length).toBeGreaterThanOrEqual(minSize);
  });

  it('handles more shards than samples by leaving some shards empty', () => {
    const parts = partitionIndices(makeLabels(3), NUM_CLASSES, 5, { kind: 'dirichlet', alpha: 1 }, 1);
    expectExactCover(parts, 3);
    expect(parts).toHaveLength(5);
  });

  it('rejects labels outside the class range and bad shard counts', () => {
    expect(() => partitionIndices([0, 10], NUM_CLASSES, 2, { kind: 'dirichlet', alpha: 1 }, 1)).toThrow(
      expect.objectContaining({ code: 'DATA_MALFORMED' }),
    );
    expect(() => partitionIndices([0, 1], NUM_CLASSES, 0, { kind: 'iid' }, 1)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
  });
});
