import { TributaryError } from '../errors.ts';
import type { Weights } from '../ml/aggregate.ts';
import { clipToNorm } from '../ml/norms.ts';
import type { QuantBits } from '../codec/quantize.ts';
import type { Rng } from '../random.ts';
import type { RingVector } from '../secagg/ring.ts';
import { addSkellamNoise } from './noise.ts';

/**
 * Distributed DP under secure aggregation (the Skellam mechanism, Agarwal, Kairouz & Liu
 * 2021): each device clips its update to L2 norm C, rounds it stochastically to signed
 * integers, and adds Skellam noise of variance σ²/L before masking. Sums of Skellams are
 * Skellam, so once L or more devices survive the unmasked sum carries noise of variance at
 * least σ², and no sum without it ever exists, not even on the server.
 *
 * The integer input has one range c for every tensor (c = clipSigma · C/√d, clipSigma
 * "RMS" of a vector of norm C), levels q ∈ [−M, M] with M = 2^(bits−1) − 1 and step c/M.
 * Saturation only shortens a vector and stochastic rounding moves each value by less than
 * one level, so one device's input has ‖q‖₂ < C/step + √d: the sensitivity the accountant
 * counts. It is centred (no offset), so adding or removing a device moves the sum by q.
 * Layout: every tensor's levels in model order, then one zero per tensor where plain secure
 * rounds put their rms statistic (here it would leak what the noise hides).
 */

/** Standard deviations of room the ring keeps each side of the noised sum: a 10σ excursion has probability < 10⁻²². */
const HEADROOM_SIGMAS = 10;

export interface DistributedDpParams {
  /** c: every tensor's quantization range. */
  clip: number;
  /** The value of one level. */
  step: number;
  /** M: the largest level magnitude. */
  maxLevel: number;
  /** One device's input: L2 and L1 sensitivity, in levels. */
  l2: number;
  l1: number;
}

export function distributedDpParams(parameters: number, bits: QuantBits, clipSigma: number, clipNorm: number): DistributedDpParams {
  if (!(parameters > 0) || !(clipSigma > 0) || !(clipNorm > 0)) throw new TributaryError('PRIVACY_INVALID', 'distributed DP needs a model, clipSigma > 0 and a clip norm C > 0');
  // Fewer than 7 levels each side would cost more in rounding than the noise itself.
  if (bits < 4) throw new TributaryError('PRIVACY_INVALID', `distributed DP needs at least 4-bit updates, got ${bits}`);
  const maxLevel = 2 ** (bits - 1) - 1;
  const clip = Math.fround((clipSigma * clipNorm) / Math.sqrt(parameters));
  const step = clip / maxLevel;
  const l2 = clipNorm / step + Math.sqrt(parameters);
  // An integer vector's L1 norm is at most its squared L2 norm, and at most √d times its L2 norm.
  return { clip, step, maxLevel, l2, l1: Math.min(l2 * l2, Math.sqrt(parameters) * l2) };
}

/** w for n devices' noised signed levels: |Σ q + noise| stays below 2^(w−1) with HEADROOM_SIGMAS to spare. */
export function distributedRingBits(bits: QuantBits, n: number, deviceVariance: number): number {
  const bound = n * (2 ** (bits - 1) - 1) + HEADROOM_SIGMAS * Math.sqrt(n * deviceVariance);
  const w = Math.ceil(Math.log2(2 * bound + 2));
  if (w > 32) throw new TributaryError('PRIVACY_INVALID', `${n} devices at ${bits} bits with this noise need a ${w}-bit ring (max 32)`);
  return w;
}

export interface DistributedInputOptions {
  params: DistributedDpParams;
  clipNorm: number;
  /** Skellam variance this device adds to each value, in levels². */
  variance: number;
  ringBits: number;
  /** Quantization error carried to the next round, per tensor, updated in place. */
  residual: Weights;
  /** Stochastic rounding. */
  rng: Rng;
  /** The noise: a CSPRNG (cryptoRng) on devices. */
  noiseRng: Rng;
}

/** One device's input in Z(2^w): clipped, rounded, noised; length Σ lengths + tensors. */
export function encodeDistributedInput(deltas: Weights, options: DistributedInputOptions): Uint32Array {
  const { params, clipNorm, variance, ringBits, residual, rng, noiseRng } = options;
  if (residual.length !== deltas.length) throw new TributaryError('UPDATE_WRONG_LENGTH', `${deltas.length} tensors, ${residual.length} residuals`);
  const carry = deltas.map((d, t) => {
    const out = new Float32Array(d.length);
    const r = residual[t]!;
    for (let i = 0; i < d.length; i++) out[i] = r[i]! + d[i]!;
    return out;
  });
  const { clipped } = clipToNorm(carry, clipNorm);
  const total = deltas.reduce((a, d) => a + d.length, 0);
  const levels = new Int32Array(total + deltas.length);
  const { clip, step, maxLevel } = params;
  let offset = 0;
  clipped.forEach((values, t) => {
    const r = residual[t]!;
    for (let i = 0; i < values.length; i++) {
      let v = values[i]!;
      if (v !== v) throw new TributaryError('UPDATE_NOT_FINITE', `tensor ${t}`);
      v = v > clip ? clip : v < -clip ? -clip : v;
      const x = v / step;
      let q = Math.floor(x);
      if (rng.next() < x - q) q++;
      q = Math.max(-maxLevel, Math.min(maxLevel, q));
      levels[offset + i] = q;
      r[i] = values[i]! - q * step;
    }
    offset += values.length;
  });
  addSkellamNoise(levels, variance, noiseRng);
  const mask = ringBits === 32 ? 0xffffffff : 2 ** ringBits - 1;
  const out = new Uint32Array(levels.length);
  for (let i = 0; i < levels.length; i++) out[i] = (levels[i]! & mask) >>> 0;
  return out;
}

/** The unmasked sum, read as signed integers in Z(2^w), times the step, over `denominator`: the noised mean update. */
export function decodeDistributedSum(sum: RingVector, options: { lengths: readonly number[]; ringBits: number; step: number; denominator: number }): Weights {
  const { lengths, ringBits, step, denominator } = options;
  const expected = lengths.reduce((a, b) => a + b, 0) + lengths.length;
  if (sum.length !== expected) throw new TributaryError('UPDATE_WRONG_LENGTH', `sum has ${sum.length} values, expected ${expected}`);
  if (!(denominator > 0)) throw new TributaryError('INTERNAL', `cannot average over ${denominator}`);
  const modulus = 2 ** ringBits;
  const half = modulus / 2;
  const scale = step / denominator;
  let offset = 0;
  return lengths.map((n) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const s = sum[offset + i]!;
      out[i] = (s >= half ? s - modulus : s) * scale;
    }
    offset += n;
    return out;
  });
}
