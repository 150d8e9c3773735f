import { describe, expect, it } from 'vitest';
import { TributaryError } from '../../shared/errors.ts';
import {
  MAX_POISSON_LAMBDA,
  addGaussianNoise,
  addSkellamNoise,
  cryptoRng,
  samplePoisson,
  skellamNoise,
} from '../../shared/privacy/noise.ts';
import { createRng } from '../../shared/random.ts';

// How the margins are set. Every statistical bound is 6 standard errors of the statistic
// at the test's sample size, so it is not tuned to the seed: for moment checks a fixed
// seed fails with probability ~1e-9, whatever seed is chosen. The standard errors used:
//   sample mean:            σ/√N
//   sample variance:        √((μ4 − σ⁴)/N), where μ4 is the 4th central moment
//                           (Poisson: μ4 = λ + 3λ², so √((λ + 2λ²)/N))
//   a frequency p:          √(p(1 − p)/N)
//   χ² with df bins:        mean df, sd √(2df). χ²'s right tail is heavier than normal,
//                           so df + 6√(2df) is exceeded with probability below 1e-3
//                           for df ≥ 3 and below 1e-4 for df ≥ 10.

const N = 200_000;

function meanAndVariance(xs: ArrayLike<number>): { mean: number; variance: number } {
  let sum = 0;
  for (let i = 0; i < xs.length; i++) sum += xs[i]!;
  const mean = sum / xs.length;
  let ss = 0;
  for (let i = 0; i < xs.length; i++) ss += (xs[i]! - mean) ** 2;
  return { mean, variance: ss / (xs.length - 1) };
}

function poissonSamples(lambda: number, n: number, seed: number): Float64Array {
  const rng = createRng(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = samplePoisson(lambda, rng);
  return out;
}

/**
 * Exact Poisson pmf on [lo, lo + pmf.length), by the ratio recurrence out from the mode.
 * This avoids log-factorials and so shares no code with the sampler. Out to 15σ + 30 the
 * omitted tails are below 1e-40.
 */
function poissonPmf(lambda: number): { lo: number; pmf: Float64Array } {
  const mode = Math.floor(lambda);
  const reach = Math.ceil(15 * Math.sqrt(lambda) + 30);
  const lo = Math.max(0, mode - reach);
  const hi = mode + reach;
  const pmf = new Float64Array(hi - lo + 1);
  pmf[mode - lo] = 1;
  for (let k = mode + 1; k <= hi; k++) pmf[k - lo] = (pmf[k - 1 - lo]! * lambda) / k;
  for (let k = mode - 1; k >= lo; k--) pmf[k - lo] = (pmf[k + 1 - lo]! * (k + 1)) / lambda;
  const total = pmf.reduce((s, p) => s + p, 0);
  for (let i = 0; i < pmf.length; i++) pmf[i] = pmf[i]! / total;
  return { lo, pmf };
}

/** Exact symmetric Skellam pmf P(X = j) = Σ_m p(m + j)·p(m), with p the Poisson(variance/2) pmf. */
function skellamPmf(variance: number): { lo: number; pmf: Float64Array } {
  // The difference of two draws does not depend on where their common range starts.
  const { pmf: p } = poissonPmf(variance / 2);
  const width = p.length - 1;
  const pmf = new Float64Array(2 * width + 1);
  for (let m = 0; m < p.length; m++) {
    for (let n = 0; n < p.length; n++) pmf[m - n + width] = pmf[m - n + width]! + p[m]! * p[n]!;
  }
  return { lo: -width, pmf };
}

/**
 * Pearson's χ² of integer samples against an exact pmf. Bins are merged left to right
 * until each expects at least 20 draws, and samples outside the pmf's range fall into the
 * end bins.
 */
function chiSquare(samples: ArrayLike<number>, exact: { lo: number; pmf: Float64Array }): { stat: number; df: number } {
  const { lo, pmf } = exact;
  const counts = new Float64Array(pmf.length);
  for (let i = 0; i < samples.length; i++) {
    const j = Math.min(Math.max(samples[i]! - lo, 0), pmf.length - 1);
    counts[j] = counts[j]! + 1;
  }
  const n = samples.length;
  const bins: Array<{ observed: number; expected: number }> = [];
  let observed = 0;
  let expected = 0;
  for (let j = 0; j < pmf.length; j++) {
    observed += counts[j]!;
    expected += pmf[j]! * n;
    if (expected >= 20) {
      bins.push({ observed, expected });
      observed = 0;
      expected = 0;
    }
  }
  const last = bins[bins.length - 1]!;
  last.observed += observed;
  last.expected += expected;
  const stat = bins.reduce((s, b) => s + (b.observed - b.expected) ** 2 / b.expected, 0);
  return { stat, df: bins.length - 1 };
}

function expectChiSquareFits(samples: ArrayLike<number>, exact: { lo: number; pmf: Float64Array }): void {
  const { stat, df } = chiSquare(samples, exact);
  expect(df).toBeGreaterThanOrEqual(3);
  expect(stat).toBeLessThan(df + 6 * Math.sqrt(2 * df));
}

function expectBadRequest(run: () => unknown): void {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(TributaryError);
  expect((caught as TributaryError).code).toBe('BAD_REQUEST');
}

describe('samplePoisson', () => {
  it.each([0.5, 3, 9.99, 10, 50, 1e4, 1e6])('has mean and variance λ for λ = %s', (lambda) => {
    const { mean, variance } = meanAndVariance(poissonSamples(lambda, N, 11));
    expect(Math.abs(mean - lambda)).toBeLessThan(6 * Math.sqrt(lambda / N));
    expect(Math.abs(variance - lambda)).toBeLessThan(6 * Math.sqrt((lambda + 2 * lambda * lambda) / N));
  });

  it('returns 0 for λ = 0, every time', () => {
    const samples = poissonSamples(0, 1000, 1);
    expect(samples.every((k) => k === 0)).toBe(true);
  });

  it('returns non-negative integers', () => {
    for (const lambda of [0.5, 9.99, 10, 1e4]) {
      expect(poissonSamples(lambda, 10_000, 2).every((k) => Number.isInteger(k) && k >= 0)).toBe(true);
    }
  });

  // Inversion below λ = 10, PTRS from λ = 10 on: both sides of the switch, and PTRS where
  // Hörmann's published constants were off (λ ≈ 14 and 27, see HAT_SCALE in noise.ts).
  it.each([0.5, 3, 9.99, 10, 14, 27.234, 50, 1e4])('matches the exact pmf in a χ² test for λ = %s', (lambda) => {
    expectChiSquareFits(poissonSamples(lambda, N, 5), poissonPmf(lambda));
  });

  it('keeps the largest frequency deviation for λ = 3 within 6 standard errors of the pmf', () => {
    const samples = poissonSamples(3, N, 8);
    const { pmf } = poissonPmf(3);
    for (let k = 0; k <= 12; k++) {
      const p = pmf[k]!;
      const observed = samples.reduce((c, x) => c + (x === k ? 1 : 0), 0) / N;
      expect(Math.abs(observed - p)).toBeLessThan(6 * Math.sqrt((p * (1 - p)) / N) + 1 / N);
    }
  });

  it('replays the same draws from the same seed', () => {
    for (const lambda of [3, 10, 1e6]) {
      expect(poissonSamples(lambda, 500, 99)).toEqual(poissonSamples(lambda, 500, 99));
    }
    expect(poissonSamples(1e4, 500, 99)).not.toEqual(poissonSamples(1e4, 500, 100));
  });

  it('rejects a negative, NaN, infinite or too large λ with BAD_REQUEST', () => {
    const rng = createRng(1);
    for (const lambda of [-1, -1e-300, NaN, Infinity, -Infinity, MAX_POISSON_LAMBDA * 1.5]) {
      expectBadRequest(() => samplePoisson(lambda, rng));
    }
    expect(Number.isInteger(samplePoisson(MAX_POISSON_LAMBDA, rng))).toBe(true);
  });
});

describe('skellamNoise', () => {
  it('has mean 0 and the requested variance, for small and large variances', () => {
    for (const variance of [1, 30, 2e4]) {
      const { mean, variance: v } = meanAndVariance(skellamNoise(N, variance, createRng(21)));
      expect(Math.abs(mean)).toBeLessThan(6 * Math.sqrt(variance / N));
      // Symmetric Skellam has μ4 = 3v² + v, so Var(sample variance) ≈ (2v² + v)/N.
      expect(Math.abs(v - variance)).toBeLessThan(6 * Math.sqrt((2 * variance * variance + variance) / N));
    }
  });

  it('is symmetric: as many positive as negative draws', () => {
    const noise = skellamNoise(N, 30, createRng(22));
    let balance = 0;
    for (const x of noise) balance += Math.sign(x);
    // Each draw contributes ±1 or 0, so the balance has sd at most √N.
    expect(Math.abs(balance)).toBeLessThan(6 * Math.sqrt(N));
  });

  it('matches the exact Skellam pmf in a χ² test', () => {
    expectChiSquareFits(skellamNoise(N, 30, createRng(23)), skellamPmf(30));
  });

  it('sums over 8 devices each adding variance 4/8 to exactly Skellam(4)', () => {
    const devices = Array.from({ length: 8 }, (_, d) => skellamNoise(N, 4 / 8, createRng(100 + d)));
    const total = new Int32Array(N);
    for (const noise of devices) for (let i = 0; i < N; i++) total[i] = total[i]! + noise[i]!;
    expectChiSquareFits(total, skellamPmf(4));
  });

  it('adds in place with addSkellamNoise, wrapping mod 2^32 as a ring does', () => {
    const base = Int32Array.from([0, 5, -7, 2 ** 31 - 1, -(2 ** 31)]);
    const levels = base.slice();
    addSkellamNoise(levels, 1e6, createRng(4));
    const noise = skellamNoise(base.length, 1e6, createRng(4));
    for (let i = 0; i < base.length; i++) expect(levels[i]).toBe((base[i]! + noise[i]!) | 0);
  });

  it('adds nothing for variance 0 and handles length 0', () => {
    expect(skellamNoise(50, 0, createRng(1)).every((x) => x === 0)).toBe(true);
    expect(skellamNoise(0, 10, createRng(1)).length).toBe(0);
  });

  it('replays the same noise from the same seed', () => {
    expect(skellamNoise(1000, 500, createRng(7))).toEqual(skellamNoise(1000, 500, createRng(7)));
    expect(skellamNoise(1000, 500, createRng(7))).not.toEqual(skellamNoise(1000, 500, createRng(8)));
  });

  it('rejects a bad variance or length with BAD_REQUEST', () => {
    const rng = createRng(1);
    for (const variance of [-1, NaN, Infinity, 3 * MAX_POISSON_LAMBDA]) {
      expectBadRequest(() => skellamNoise(10, variance, rng));
      expectBadRequest(() => addSkellamNoise(new Int32Array(10), variance, rng));
    }
    for (const length of [-1, 1.5, NaN, Infinity]) expectBadRequest(() => skellamNoise(length, 1, rng));
  });
});

describe('addGaussianNoise', () => {
  it('adds N(0, std²): mean, standard deviation and the 1σ and 3σ frequencies', () => {
    const std = 2.5;
    const values = new Float64Array(N);
    addGaussianNoise(values, std, createRng(31));
    const { mean, variance } = meanAndVariance(values);
    expect(Math.abs(mean)).toBeLessThan(6 * (std / Math.sqrt(N)));
    // Normal: μ4 = 3σ⁴, so the sample variance has sd σ²·√(2/N).
    expect(Math.abs(variance / (std * std) - 1)).toBeLessThan(6 * Math.sqrt(2 / N));
    for (const [width, p] of [
      [1, 0.6826894921370859],
      [3, 0.9973002039367398],
    ] as const) {
      const inside = values.reduce((c, x) => c + (Math.abs(x) < width * std ? 1 : 0), 0) / N;
      expect(Math.abs(inside - p)).toBeLessThan(6 * Math.sqrt((p * (1 - p)) / N));
    }
  });

  it('adds to the existing values of a Float32Array, odd lengths included', () => {
    const values = new Float32Array([1, 2, 3]);
    addGaussianNoise(values, 0.1, createRng(3));
    const noise = new Float64Array(3);
    addGaussianNoise(noise, 0.1, createRng(3));
    for (let i = 0; i < 3; i++) expect(values[i]).toBe(Math.fround(i + 1 + noise[i]!));
    expect(noise.every((x) => x !== 0)).toBe(true);
  });

  it('leaves the values alone for std 0', () => {
    const values = new Float64Array([1, -2, 3]);
    addGaussianNoise(values, 0, createRng(1));
    expect([...values]).toEqual([1, -2, 3]);
  });

  it('replays the same noise from the same seed', () => {
    const a = new Float64Array(1001);
    const b = new Float64Array(1001);
    addGaussianNoise(a, 1, createRng(5));
    addGaussianNoise(b, 1, createRng(5));
    expect(a).toEqual(b);
  });

  it('rejects a negative, NaN or infinite std with BAD_REQUEST', () => {
    for (const std of [-1, NaN, Infinity]) expectBadRequest(() => addGaussianNoise(new Float64Array(4), std, createRng(1)));
  });
});

describe('cryptoRng', () => {
  it('gives next() in [0, 1) with mean near one half, across several buffer refills', () => {
    const rng = cryptoRng();
    const n = 20_000; // 40,000 words: nearly ten refills of 4096
    let sum = 0;
    let min = 1;
    let max = 0;
    for (let i = 0; i < n; i++) {
      const x = rng.next();
      sum += x;
      if (x < min) min = x;
      if (x > max) max = x;
    }
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThan(1);
    expect(Math.abs(sum / n - 0.5)).toBeLessThan(6 * Math.sqrt(1 / 12 / n));
  });

  it('gives next() 53 bits of resolution, finer than the 2^-32 grid', () => {
    const rng = cryptoRng();
    const values = Array.from({ length: 100 }, () => rng.next());
    // A 53-bit uniform lands on the 2^-32 grid with probability 2^-21.
    expect(values.some((x) => !Number.isInteger(x * 2 ** 32))).toBe(true);
  });

  it('gives unsigned 32-bit words that vary and use the high bit', () => {
    const rng = cryptoRng();
    const n = 20_000;
    const words = Array.from({ length: n }, () => rng.nextUint32());
    expect(words.every((w) => Number.isInteger(w) && w >= 0 && w < 2 ** 32)).toBe(true);
    expect(words.some((w) => w >= 2 ** 31)).toBe(true);
    // Expected repeats among n random words: n²/2^33 ≈ 0.05; four or more has probability ~2e-7.
    expect(new Set(words).size).toBeGreaterThan(n - 4);
  });

  it('gives independent streams to separate instances', () => {
    const a = cryptoRng();
    const b = cryptoRng();
    const fromA = Array.from({ length: 8 }, () => a.nextUint32());
    const fromB = Array.from({ length: 8 }, () => b.nextUint32());
    expect(fromA).not.toEqual(fromB);
  });

  it('drives the samplers', () => {
    const { variance } = meanAndVariance(skellamNoise(20_000, 100, cryptoRng()));
    expect(Math.abs(variance - 100)).toBeLessThan(6 * Math.sqrt((2 * 100 * 100 + 100) / 20_000));
  });
});
