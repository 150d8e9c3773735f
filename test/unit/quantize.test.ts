import { describe, expect, it } from 'vitest';
import {
  QUANT_BITS,
  chooseClip,
  dequantize,
  quantizationStep,
  quantize,
  quantizeWithFeedback,
} from '../../shared/codec/quantize.ts';
import { createRng } from '../../shared/random.ts';

/** Deterministic values spread over [-1, 1], deliberately off the quantization grid. */
function spread(n: number, seed = 1): Float32Array {
  const rng = createRng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.next() * 2 - 1;
  return out;
}

describe('chooseClip', () => {
  it('is the largest magnitude when clipSigma is Infinity', () => {
    expect(chooseClip(new Float32Array([0.5, -2, 1]), Infinity)).toBe(2);
  });

  it('caps the clip at clipSigma times the RMS when an outlier dominates', () => {
    const values = new Float32Array(100).fill(0.1);
    values[0] = 50;
    const rms = Math.sqrt((99 * 0.1 ** 2 + 50 ** 2) / 100);
    expect(chooseClip(values, 2)).toBeCloseTo(2 * rms, 5);
    expect(chooseClip(values, 1000)).toBe(50);
  });

  it('returns 0 for an all-zero or empty tensor', () => {
    expect(chooseClip(new Float32Array(10), 3)).toBe(0);
    expect(chooseClip(new Float32Array(0), 3)).toBe(0);
  });

  it('returns a value exactly representable as float32', () => {
    const clip = chooseClip(spread(1000), 1.5);
    expect(Math.fround(clip)).toBe(clip);
  });

  it('rejects non-finite values and a non-positive clipSigma', () => {
    expect(() => chooseClip(new Float32Array([1, NaN]), 3)).toThrow(expect.objectContaining({ code: 'UPDATE_NOT_FINITE' }));
    expect(() => chooseClip(new Float32Array([1, Infinity]), 3)).toThrow(expect.objectContaining({ code: 'UPDATE_NOT_FINITE' }));
    expect(() => chooseClip(new Float32Array([1]), 0)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
  });
});

describe('quantize', () => {
  it.each(QUANT_BITS)('keeps %i-bit levels within [0, 2^bits − 1] and hits both ends', (bits) => {
    const values = spread(4000, bits);
    values[0] = 5; // clipped to +clip
    values[1] = -5; // clipped to −clip
    const q = quantize(values, bits, 1, createRng(2));
    const top = 2 ** bits - 1;
    expect(q.levels.every((l) => l >= 0 && l <= top)).toBe(true);
    expect(q.levels[0]).toBe(top);
    expect(q.levels[1]).toBe(0);
  });

  it.each(QUANT_BITS)('decodes %i-bit values within one step of inputs inside the clip range', (bits) => {
    const values = spread(5000, 3);
    const clip = 1;
    const step = quantizationStep(bits, clip);
    const decoded = dequantize(quantize(values, bits, clip, createRng(4)));
    let worst = 0;
    for (let i = 0; i < values.length; i++) worst = Math.max(worst, Math.abs(values[i]! - decoded[i]!));
    expect(worst).toBeLessThanOrEqual(step * (1 + 1e-6));
    // Rounding really is to neighbouring levels, not something coarser that happens to pass.
    expect(worst).toBeGreaterThan(step / 2);
  });

  it.each(QUANT_BITS)('is unbiased at %i bits: the mean of many decodes approaches the input', (bits) => {
    const values = spread(64, 5);
    const clip = 1;
    const step = quantizationStep(bits, clip);
    const trials = 2000;
    const sum = new Float64Array(values.length);
    const rng = createRng(6);
    const decoded = new Float32Array(values.length);
    for (let t = 0; t < trials; t++) {
      dequantize(quantize(values, bits, clip, rng), decoded);
      for (let i = 0; i < values.length; i++) sum[i] = sum[i]! + decoded[i]!;
    }
    // Each decode's error has std ≤ step/2; allow 5 standard errors of the mean plus float32 rounding.
    const bound = (5 * step) / 2 / Math.sqrt(trials) + 1e-7;
    for (let i = 0; i < values.length; i++) {
      expect(Math.abs(sum[i]! / trials - values[i]!)).toBeLessThan(bound);
    }
  });

  it('decodes an all-zero tensor to exact zeros', () => {
    const zeros = new Float32Array(20);
    const clip = chooseClip(zeros, 3);
    const q = quantize(zeros, 8, clip, createRng(1));
    expect(q.clip).toBe(0);
    const decoded = dequantize(q, new Float32Array(20).fill(9));
    expect(decoded.every((v) => Object.is(v, 0))).toBe(true);
  });

  it('consumes the same amount of randomness whatever the values', () => {
    const a = createRng(8);
    const b = createRng(8);
    quantize(spread(100, 1), 4, 1, a);
    quantize(spread(100, 2), 4, 0.5, b);
    expect(a.nextUint32()).toBe(b.nextUint32());
  });

  it('rejects NaN values and a non-finite clip', () => {
    expect(() => quantize(new Float32Array([NaN]), 8, 1, createRng(1))).toThrow(expect.objectContaining({ code: 'UPDATE_NOT_FINITE' }));
    expect(() => quantize(new Float32Array([1]), 8, Infinity, createRng(1))).toThrow(expect.objectContaining({ code: 'UPDATE_NOT_FINITE' }));
  });

  it('rejects an output buffer of the wrong length', () => {
    const q = quantize(new Float32Array([0.5, -0.5]), 8, 1, createRng(1));
    expect(() => dequantize(q, new Float32Array(3))).toThrow(expect.objectContaining({ code: 'UPDATE_WRONG_LENGTH' }));
  });
});

describe('quantizeWithFeedback', () => {
  it('leaves residual = (delta + old residual) − decoded and does not touch delta', () => {
    const delta = spread(500, 9);
    const deltaCopy = delta.slice();
    const residual = spread(500, 10).map((x) => x * 0.01);
    const v = delta.map((d, i) => d + residual[i]!);
    const q = quantizeWithFeedback(delta, residual, 4, 2, createRng(1));
    const decoded = dequantize(q);
    expect(delta).toEqual(deltaCopy);
    for (let i = 0; i < v.length; i++) expect(residual[i]).toBe(Math.fround(v[i]! - decoded[i]!));
  });

  it.each([2, 4, 8] as const)('tracks the running sum of a constant delta without drift at %i bits', (bits) => {
    const n = 200;
    const delta = spread(n, 12).map((x) => x * 0.01);
    // An outlier that a clip of 2 RMS cuts: clip ≈ 2·|v₀|/√n, so its residual must grow to
    // roughly 1.2 before a round can carry 0.2 — and should then stay there.
    delta[0] = 0.2;
    const residual = new Float32Array(n);
    const rng = createRng(13);
    const sentSum = new Float64Array(n);
    const rounds = 300;
    const worstGap = [0, 0, 0]; // per third of the run
    for (let r = 1; r <= rounds; r++) {
      const decoded = dequantize(quantizeWithFeedback(delta, residual, bits, 2, rng));
      const third = Math.min(2, Math.floor(((r - 1) * 3) / rounds));
      for (let i = 0; i < n; i++) {
        sentSum[i] = sentSum[i]! + decoded[i]!;
        worstGap[third] = Math.max(worstGap[third]!, Math.abs(sentSum[i]! - r * delta[i]!));
      }
    }
    // The gap between what was sent and what was meant is exactly the carried residual.
    for (let i = 0; i < n; i++) {
      expect(Math.abs(Math.abs(sentSum[i]! - rounds * delta[i]!) - Math.abs(residual[i]!))).toBeLessThan(1e-4);
    }
    // Bounded (without feedback the outlier alone would fall ~40 short by now) and not growing.
    expect(worstGap[2]).toBeLessThan(1.6);
    expect(worstGap[2]).toBeLessThanOrEqual(worstGap[1]! * 1.05);
    // Ordinary elements are never clipped, so their gap is only the last rounding error,
    // below one step (the clip settles near 0.2).
    let worstOrdinary = 0;
    for (let i = 1; i < n; i++) worstOrdinary = Math.max(worstOrdinary, Math.abs(sentSum[i]! - rounds * delta[i]!));
    expect(worstOrdinary).toBeLessThan(quantizationStep(bits, 0.25));
  });

  it('keeps an all-zero input at zero residual', () => {
    const residual = new Float32Array(5);
    const q = quantizeWithFeedback(new Float32Array(5), residual, 8, 3, createRng(1));
    expect(q.clip).toBe(0);
    expect(residual.every((v) => v === 0)).toBe(true);
  });

  it('rejects a residual of the wrong length', () => {
    expect(() => quantizeWithFeedback(new Float32Array(3), new Float32Array(2), 8, 3, createRng(1))).toThrow(
      expect.objectContaining({ code: 'UPDATE_WRONG_LENGTH' }),
    );
  });
});
