import { describe, expect, it } from 'vitest';
import {
  createRng,
  deriveSeed,
  sampleDirichlet,
  sampleGamma,
  sampleStandardNormal,
  shuffleInPlace,
} from '../../shared/random.ts';

function draws(seed: number, n: number): number[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => rng.nextUint32());
}

describe('createRng', () => {
  it('replays the same stream for the same seed', () => {
    expect(draws(42, 100)).toEqual(draws(42, 100));
  });

  it('gives different streams for different seeds, including 0 and negative seeds', () => {
    const streams = [0, 1, 2, -1, 0x7fffffff].map((s) => draws(s, 8).join(','));
    expect(new Set(streams).size).toBe(streams.length);
  });

  it('produces a non-degenerate stream from seed 0', () => {
    const values = draws(0, 64);
    expect(new Set(values).size).toBe(64);
  });

  it('keeps next() in [0, 1) with a mean near one half', () => {
    const rng = createRng(7);
    let sum = 0;
    const n = 20_000;
    let min = 1;
    let max = 0;
    for (let i = 0; i < n; i++) {
      const x = rng.next();
      if (x < min) min = x;
      if (x > max) max = x;
      sum += x;
    }
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThan(1);
    // std of the mean is sqrt(1/12/n) ≈ 0.002
    expect(Math.abs(sum / n - 0.5)).toBeLessThan(0.01);
  });

  it('returns unsigned 32-bit integers that use the high bit', () => {
    const values = draws(3, 1000);
    expect(values.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32)).toBe(true);
    expect(values.some((v) => v >= 2 ** 31)).toBe(true);
  });
});

describe('deriveSeed', () => {
  it('is deterministic and returns an unsigned 32-bit integer', () => {
    const a = deriveSeed('partition', 42, 3);
    expect(a).toBe(deriveSeed('partition', 42, 3));
    expect(Number.isInteger(a) && a >= 0 && a < 2 ** 32).toBe(true);
  });

  it('separates parts that would concatenate to the same text', () => {
    const seeds = [deriveSeed('ab', 'c'), deriveSeed('a', 'bc'), deriveSeed(1), deriveSeed('1'), deriveSeed(1, 2), deriveSeed(12)];
    expect(new Set(seeds).size).toBe(seeds.length);
  });
});

describe('shuffleInPlace', () => {
  it('permutes the items in place, deterministically for a seed', () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const shuffled = shuffleInPlace(items, createRng(1));
    expect(shuffled).toBe(items);
    expect([...items].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(items).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(shuffleInPlace(Array.from({ length: 50 }, (_, i) => i), createRng(1))).toEqual(items);
  });

  it('puts each item in each position about equally often', () => {
    const rng = createRng(5);
    const counts = [0, 0, 0, 0];
    const trials = 8000;
    for (let t = 0; t < trials; t++) {
      const order = shuffleInPlace([0, 1, 2, 3], rng);
      counts[order.indexOf(0)]!++;
    }
    for (const c of counts) expect(Math.abs(c - trials / 4)).toBeLessThan(150);
  });
});

describe('samplers', () => {
  it('draws standard normals with mean 0 and variance 1', () => {
    const rng = createRng(11);
    const n = 20_000;
    let sum = 0;
    let sumSq = 0;
    for (let i = 0; i < n; i++) {
      const x = sampleStandardNormal(rng);
      sum += x;
      sumSq += x * x;
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.04);
    expect(Math.abs(sumSq / n - 1)).toBeLessThan(0.05);
  });

  it.each([0.3, 1, 2.5, 9])('draws gamma(%s) samples whose mean is the shape', (shape) => {
    const rng = createRng(Math.round(shape * 100));
    const n = 20_000;
    let sum = 0;
    let min = Infinity;
    for (let i = 0; i < n; i++) {
      const g = sampleGamma(shape, rng);
      if (g < min) min = g;
      sum += g;
    }
    expect(min).toBeGreaterThanOrEqual(0);
    // Var = shape, so the mean's std is sqrt(shape / n); allow 5 of them.
    expect(Math.abs(sum / n - shape)).toBeLessThan(5 * Math.sqrt(shape / n));
  });

  it('rejects a non-positive gamma shape', () => {
    expect(() => sampleGamma(0, createRng(1))).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });

  it.each([0.05, 0.5, 1, 10])('draws Dirichlet(%s) vectors that are positive and sum to 1', (alpha) => {
    const rng = createRng(99);
    for (let t = 0; t < 200; t++) {
      const p = sampleDirichlet(alpha, 10, rng);
      expect(p).toHaveLength(10);
      expect(Math.abs(p.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-12);
      expect(p.every((x) => x >= 0 && x <= 1)).toBe(true);
      if (alpha >= 0.5) expect(p.every((x) => x > 0)).toBe(true);
    }
  });

  it('stays normalised when alpha is so small that linear gamma samples underflow', () => {
    const p = sampleDirichlet(0.001, 20, createRng(3));
    expect(p.every(Number.isFinite)).toBe(true);
    expect(Math.abs(p.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-12);
  });

  it('concentrates Dirichlet mass more for small alpha', () => {
    const rng = createRng(4);
    const meanMax = (alpha: number) => {
      let total = 0;
      for (let t = 0; t < 500; t++) total += Math.max(...sampleDirichlet(alpha, 10, rng));
      return total / 500;
    };
    expect(meanMax(0.1)).toBeGreaterThan(0.6);
    expect(meanMax(100)).toBeLessThan(0.2);
  });
});
