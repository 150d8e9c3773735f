import { describe, expect, it } from 'vitest';
import { quantizationStep } from '../../shared/codec/quantize.ts';
import { decodeSecureSum, encodeSecureInput, INITIAL_SECURE_CLIP, nextClips, secureInputLength } from '../../shared/codec/secure-codec.ts';
import { createRng } from '../../shared/random.ts';
import { expectCode } from '../support/expect-code.ts';

const zeros = (lengths: readonly number[]) => lengths.map((n) => new Float32Array(n));

describe('secure input layout', () => {
  it('is every tensor’s levels in model order, then one level per tensor', () => {
    expect(secureInputLength([50, 0, 7])).toBe(50 + 0 + 7 + 3);
  });

  it('encodes values on the levels exactly and appends min(1, rms/clip) as a level', () => {
    // bits 2, clip 1.5: step 1, levels stand for −1.5, −0.5, 0.5, 1.5.
    // Tensor 0: rms 1.5 → ratio 1 → level 3. Tensor 1: rms 0.5 → ratio 1/3 → level 1.
    const residual = zeros([2, 4]);
    const input = encodeSecureInput([Float32Array.of(1.5, -1.5), Float32Array.of(0.5, -0.5, 0.5, -0.5)], {
      bits: 2,
      clips: [1.5, 1.5],
      scale: 1,
      residual,
      rng: createRng(1),
    });
    expect([...input]).toEqual([3, 0, 2, 1, 2, 1, 3, 1]);
    expect(residual).toEqual(zeros([2, 4])); // nothing was lost
  });

  it('scales by n/n̄ before quantizing, caps the ratio at 1 and leaves the clipped excess in the residual', () => {
    // scale 2: carry = [2.5, −0.5]; 2.5 clips to 1.5 (level 3, 1.0 left over), −0.5 is level 1; rms = √3.25 > 1.5: ratio 1.
    const residual = zeros([2]);
    const input = encodeSecureInput([Float32Array.of(1.25, -0.25)], { bits: 2, clips: [1.5], scale: 2, residual, rng: createRng(1) });
    expect([...input]).toEqual([3, 1, 3]);
    expect(residual).toEqual([Float32Array.of(1, 0)]);
  });

  it('clips the whole scaled input to the round’s norm bound on the device, dropping the excess', () => {
    // carry = [3, 4] (norm 5) over two tensors; bound 2.5 halves it to [1.5, 2]; clip 2: 1.5 → level 2.25 of 3
    // rounds to 2 or 3 (−2 + step·q, step 4/3), 2 → level 3 exactly.
    const residual = zeros([1, 1]);
    const input = encodeSecureInput([Float32Array.of(3), Float32Array.of(4)], { bits: 2, clips: [2, 2], scale: 1, residual, rng: createRng(1), normBound: 2.5 });
    expect([2, 3]).toContain(input[0]);
    expect(input[1]).toBe(3);
    // What quantization left out is carried; what the bound cut (2.5 of the norm) is gone.
    const carried = Math.hypot(residual[0]![0]!, residual[1]![0]!);
    expect(carried).toBeLessThan(2 / 3 + 1e-6);
    const unbounded = zeros([1, 1]);
    encodeSecureInput([Float32Array.of(3), Float32Array.of(4)], { bits: 2, clips: [2, 2], scale: 1, residual: unbounded, rng: createRng(1) });
    expect(unbounded[1]![0]).toBeCloseTo(2, 6); // without a bound, the saturated excess of 4 − 2 is carried instead
  });

  it('adds the residual carried from the last round before quantizing', () => {
    const residual = [Float32Array.of(0.5, -1)];
    const input = encodeSecureInput([Float32Array.of(1, 0.5)], { bits: 2, clips: [1.5], scale: 1, residual, rng: createRng(1) });
    // carry = [1.5, −0.5] → levels [3, 1]; rms = √1.25 ≈ 1.118, ratio ≈ 0.745 → level 2 or 3.
    expect([...input.subarray(0, 2)]).toEqual([3, 1]);
    expect([2, 3]).toContain(input[2]);
    expect(residual).toEqual([Float32Array.of(0, 0)]);
  });

  it('answers clips or residuals that do not match the tensors with UPDATE_WRONG_LENGTH', () => {
    const rng = createRng(1);
    expectCode(() => encodeSecureInput(zeros([2, 2]), { bits: 8, clips: [1], scale: 1, residual: zeros([2, 2]), rng }), 'UPDATE_WRONG_LENGTH');
    expectCode(() => encodeSecureInput(zeros([2, 2]), { bits: 8, clips: [1, 1], scale: 1, residual: zeros([2]), rng }), 'UPDATE_WRONG_LENGTH');
  });

  it.each([0, -1, NaN, Infinity])('answers a sample scale of %s with BAD_REQUEST', (scale) => {
    expectCode(() => encodeSecureInput(zeros([2]), { bits: 8, clips: [1], scale, residual: zeros([2]), rng: createRng(1) }), 'BAD_REQUEST');
  });

  it.each([0, -0.5, NaN, Infinity])('answers a clip of %s with BAD_REQUEST', (clip) => {
    expectCode(() => encodeSecureInput(zeros([2]), { bits: 8, clips: [clip], scale: 1, residual: zeros([2]), rng: createRng(1) }), 'BAD_REQUEST');
  });

  it('answers a non-finite update with UPDATE_NOT_FINITE', () => {
    expectCode(() => encodeSecureInput([Float32Array.of(1, NaN)], { bits: 8, clips: [1], scale: 1, residual: zeros([2]), rng: createRng(1) }), 'UPDATE_NOT_FINITE');
  });
});

describe('decodeSecureSum', () => {
  // bits 2 (top 3); tensor 0 at clip 1 (step 2/3), tensor 1 at clip 0.5 (step 1/3); two survivors.
  //   A: levels [3, 0 | 1] = values [1, −1 | −1/6], ratio levels [3, 1]
  //   B: levels [2, 1 | 3] = values [1/3, −1/3 | 1/2], ratio levels [1, 2]
  // Sum [5, 1, 4 | 4, 3]. Mean of tensor 0: (−2·1 + 5·2/3)/2 = 2/3 and (−2 + 2/3)/2 = −2/3; tensor 1: (−2·0.5 + 4/3)/2 = 1/6.
  // Ratios: 4/3/2 = 2/3 and 3/3/2 = 1/2.
  const sum = Uint32Array.of(5, 1, 4, 4, 3);
  const options = { bits: 2, clips: [1, 0.5], lengths: [2, 1], survivors: 2 } as const;

  it('reads the sample-weighted mean and the mean rms ratio of a hand-computed sum', () => {
    const reading = decodeSecureSum(sum, { ...options, weight: 2 });
    expect(reading.mean).toEqual([Float32Array.of(2 / 3, -2 / 3), Float32Array.of(1 / 6)]);
    expect(reading.rmsRatio[0]).toBeCloseTo(2 / 3, 12);
    expect(reading.rmsRatio[1]).toBeCloseTo(1 / 2, 12);
  });

  it('divides by the survivors’ total sample weight, not their number', () => {
    // Weight 4 (e.g. scales 3 and 1): the values' sum is halved again; the ratios still average over survivors.
    const reading = decodeSecureSum(sum, { ...options, weight: 4 });
    expect(reading.mean).toEqual([Float32Array.of(1 / 3, -1 / 3), Float32Array.of(1 / 12)]);
    expect(reading.rmsRatio[1]).toBeCloseTo(1 / 2, 12);
  });

  it('answers a sum of the wrong length with UPDATE_WRONG_LENGTH', () => {
    expectCode(() => decodeSecureSum(sum.subarray(0, 4), { ...options, weight: 2 }), 'UPDATE_WRONG_LENGTH');
  });

  it('answers a sum with no survivors or no weight with INTERNAL', () => {
    expectCode(() => decodeSecureSum(sum, { ...options, weight: 0 }), 'INTERNAL');
    expectCode(() => decodeSecureSum(sum, { ...options, survivors: 0, weight: 2 }), 'INTERNAL');
  });
});

describe('nextClips', () => {
  it('sets the next clip to clipSigma × mean ratio × clip, rounded to float32', () => {
    expect(nextClips([0.05, 0.5], [0.25, 0.1], 6)).toEqual([Math.fround(6 * 0.25 * 0.05), Math.fround(6 * 0.1 * 0.5)]);
    expect(nextClips([0.05], [0.25], 6)[0]).toBe(Math.fround(0.075));
  });

  it('grows a saturated clip clipSigma-fold, counting a ratio above 1 as 1', () => {
    expect(nextClips([0.5, 0.5], [1, 1.5], 6)).toEqual([3, 3]);
  });

  it('keeps the clip of a tensor with no statistic (ratio 0, missing or not a number)', () => {
    expect(nextClips([0.2, 0.3, 0.4], [0, NaN], 6)).toEqual([0.2, 0.3, 0.4]);
  });

  it('never shrinks a clip below 1e-6', () => {
    expect(nextClips([1e-6], [0.01], 6)).toEqual([Math.fround(1e-6)]);
  });
});

describe('a secure sum of several clients', () => {
  it('recovers the sample-weighted mean within the quantization error, and each client’s residual accounts for the rest', () => {
    const lengths = [50, 7];
    const clips = [0.05, 0.02];
    const bits = 8;
    const samples = [100, 300, 200];
    const meanSamples = 200;
    const scales = samples.map((n) => n / meanSamples); // 0.5, 1.5, 1
    const weight = scales.reduce((a, b) => a + b, 0); // 3
    const rng = createRng(2024);
    // Deltas small enough that no scaled value reaches its clip.
    const deltas = samples.map(() => lengths.map((n, t) => Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * clips[t]! * 0.6)));
    const residuals = samples.map(() => zeros(lengths));
    const sum = new Uint32Array(secureInputLength(lengths));
    deltas.forEach((d, u) => {
      const input = encodeSecureInput(d, { bits, clips, scale: scales[u]!, residual: residuals[u]!, rng: createRng(100 + u) });
      for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! + input[i]!;
    });

    const reading = decodeSecureSum(sum, { bits, clips, lengths, survivors: samples.length, weight });
    lengths.forEach((n, t) => {
      const step = quantizationStep(bits, clips[t]!);
      for (let i = 0; i < n; i++) {
        const exact = deltas.reduce((acc, d, u) => acc + scales[u]! * d[t]![i]!, 0) / weight;
        const leftOver = residuals.reduce((acc, r) => acc + r[t]![i]!, 0) / weight;
        const got = reading.mean[t]![i]!;
        // Each client is off by less than a step: the mean by less than N·step/weight = step.
        expect(Math.abs(got - exact)).toBeLessThan(step);
        // Error feedback: what the sum missed is exactly what the clients kept to send later.
        expect(got + leftOver).toBeCloseTo(exact, 7);
      }
    });

    // The statistic: the mean over clients of min(1, rms(scaled delta)/clip), off by less than one level.
    lengths.forEach((n, t) => {
      const ratios = deltas.map((d, u) => {
        let sumSq = 0;
        for (let i = 0; i < n; i++) sumSq += (scales[u]! * d[t]![i]!) ** 2;
        return Math.min(1, Math.sqrt(sumSq / n) / clips[t]!);
      });
      const expected = ratios.reduce((a, b) => a + b, 0) / ratios.length;
      expect(Math.abs(reading.rmsRatio[t]! - expected)).toBeLessThan(1 / 255);
      expect(nextClips(clips, reading.rmsRatio, 6)[t]).toBeCloseTo(6 * expected * clips[t]!, 3);
    });
  });

  it('starts from a clip of 0.05', () => {
    expect(INITIAL_SECURE_CLIP).toBe(0.05);
  });
});
