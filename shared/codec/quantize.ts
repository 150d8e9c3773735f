import { TributaryError } from '../errors.ts';
import type { Rng } from '../random.ts';

/**
 * Per-tensor uniform quantization of model deltas: clip to [−clip, clip], then round
 * stochastically to one of 2^bits evenly spaced levels. Stochastic rounding keeps the
 * expected decoded value equal to the (clipped) input, so averaging many clients'
 * updates does not accumulate a rounding bias.
 */

export type QuantBits = 2 | 4 | 8 | 16;
export const QUANT_BITS: readonly QuantBits[] = [2, 4, 8, 16];

export interface QuantizedTensor {
  bits: QuantBits;
  /** Half-width of the represented range; 0 means the tensor is all zeros. */
  clip: number;
  /** Integers in [0, 2^bits − 1]; level q stands for −clip + q · 2·clip / (2^bits − 1). */
  levels: Uint32Array;
}

function checkBits(bits: number): asserts bits is QuantBits {
  if (bits !== 2 && bits !== 4 && bits !== 8 && bits !== 16) {
    throw new TributaryError('UPDATE_WRONG_BITS', `cannot quantize to ${bits} bits`);
  }
}

/** The distance between adjacent levels. */
export function quantizationStep(bits: QuantBits, clip: number): number {
  return (2 * clip) / (2 ** bits - 1);
}

/**
 * min(max|v|, clipSigma · rms(v)): clipping rare outliers keeps the step small for the
 * bulk of the values (error feedback carries the clipped excess to the next round).
 * The result is rounded to float32 because that is how the wire carries it, and the
 * encoder must quantize against exactly the clip the decoder will see.
 */
export function chooseClip(values: Float32Array, clipSigma: number): number {
  if (!(clipSigma > 0)) {
    throw new TributaryError('BAD_REQUEST', `clipSigma must be positive, got ${clipSigma}`);
  }
  let maxAbs = 0;
  let sumSq = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const a = v < 0 ? -v : v;
    if (a > maxAbs) maxAbs = a;
    sumSq += v * v;
  }
  // Squares of finite float32s cannot overflow a double sum, so this catches exactly NaN/±Inf.
  if (!Number.isFinite(sumSq)) throw new TributaryError('UPDATE_NOT_FINITE', 'tensor to quantize');
  if (maxAbs === 0) return 0;
  if (clipSigma === Infinity) return maxAbs;
  const rms = Math.sqrt(sumSq / values.length);
  return Math.fround(Math.min(maxAbs, clipSigma * rms));
}

/**
 * Clips to [−clip, clip] and rounds stochastically: one rng.next() per element, always,
 * so the stream consumed depends only on the length. Infinite inputs are clipped; NaN throws.
 */
export function quantize(values: Float32Array, bits: QuantBits, clip: number, rng: Rng): QuantizedTensor {
  checkBits(bits);
  if (!Number.isFinite(clip) || clip < 0) {
    throw new TributaryError('UPDATE_NOT_FINITE', `clip must be finite and non-negative, got ${clip}`);
  }
  const n = values.length;
  const levels = new Uint32Array(n);
  if (clip === 0) return { bits, clip: 0, levels };
  const top = 2 ** bits - 1;
  const scale = top / (2 * clip);
  for (let i = 0; i < n; i++) {
    let v = values[i]!;
    if (v !== v) throw new TributaryError('UPDATE_NOT_FINITE', `NaN at index ${i}`);
    if (v > clip) v = clip;
    else if (v < -clip) v = -clip;
    const x = (v + clip) * scale;
    let q = Math.floor(x);
    if (rng.next() < x - q) q++;
    if (q > top) q = top;
    else if (q < 0) q = 0;
    levels[i] = q;
  }
  return { bits, clip, levels };
}

/** Decodes levels into `out` (allocated if omitted). */
export function dequantize(q: QuantizedTensor, out?: Float32Array): Float32Array {
  const n = q.levels.length;
  const target = out ?? new Float32Array(n);
  if (target.length !== n) {
    throw new TributaryError('UPDATE_WRONG_LENGTH', `output has ${target.length} slots for ${n} levels`);
  }
  if (q.clip === 0) return target.fill(0);
  const step = quantizationStep(q.bits, q.clip);
  const lo = -q.clip;
  const levels = q.levels;
  for (let i = 0; i < n; i++) target[i] = lo + levels[i]! * step;
  return target;
}

/**
 * Quantizes delta + residual and leaves in `residual` what the quantized value failed to
 * carry (rounding and clipping error), so it is sent in a later round instead of lost.
 * `residual` is used as the scratch buffer for delta + residual to avoid a per-round
 * allocation; if this throws (non-finite input) it holds that sum and should be reset.
 */
export function quantizeWithFeedback(
  delta: Float32Array,
  residual: Float32Array,
  bits: QuantBits,
  clipSigma: number,
  rng: Rng,
): QuantizedTensor {
  accumulate(residual, delta, 1);
  return quantizeCarry(residual, bits, chooseClip(residual, clipSigma), rng);
}

/** target += scale · values. */
export function accumulate(target: Float32Array, values: Float32Array, scale: number): void {
  const n = values.length;
  if (target.length !== n) {
    throw new TributaryError('UPDATE_WRONG_LENGTH', `residual has ${target.length} values, delta ${n}`);
  }
  for (let i = 0; i < n; i++) target[i] = scale * values[i]! + target[i]!;
}

/**
 * Quantizes `carry` at `clip` and leaves in it what the levels fail to carry: the
 * error-feedback step once the clip is known (chosen per client, or fixed by a secure round).
 */
export function quantizeCarry(carry: Float32Array, bits: QuantBits, clip: number, rng: Rng): QuantizedTensor {
  const q = quantize(carry, bits, clip, rng);
  if (clip === 0) return q; // nothing was sent, so the whole of v stays in the residual
  const n = carry.length;
  const step = quantizationStep(bits, clip);
  const lo = -clip;
  const levels = q.levels;
  // Math.fround reproduces exactly the float32 that dequantize (and the server) produce.
  for (let i = 0; i < n; i++) carry[i] = carry[i]! - Math.fround(lo + levels[i]! * step);
  return q;
}
