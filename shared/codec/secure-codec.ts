import type { Weights } from '../ml/aggregate.ts';
import { TributaryError } from '../errors.ts';
import { clipToNorm } from '../ml/norms.ts';
import { accumulate, quantizationStep, quantizeCarry, type QuantBits } from './quantize.ts';
import type { Rng } from '../random.ts';
import type { RingVector } from '../secagg/ring.ts';

/**
 * What a client feeds into a secure sum, and how the server reads the sum back. Levels
 * only add up if every client quantizes a tensor with the same range, so the round
 * config fixes one clip per tensor. The server cannot look at individual updates to
 * choose it; instead each client appends, per tensor, the level of rms(x)/clip, and the
 * server sets the next round's clip from the mean of those (adaptive clipping in the
 * spirit of Andrew et al. 2021: the statistic is itself only ever seen summed).
 *
 * Layout of the input: every tensor's levels in model order, then one level per tensor.
 * Client u sends x_u = (n_u / n̄) · Δ_u (plus its error-feedback residual), so
 * Σ x_u / Σ (n_u / n̄) over the survivors is FedAvg's sample-weighted mean.
 */

/** First-round clip per tensor, before any statistic exists; the adaptive rule corrects it within a round or two. */
export const INITIAL_SECURE_CLIP = 0.05;
/** No clip shrinks below this (a tensor that stays exactly zero keeps its clip anyway). */
const MIN_CLIP = 1e-6;

export interface SecureInputOptions {
  bits: QuantBits;
  clips: readonly number[];
  /** n_u / n̄: this client's sample weight relative to the round's mean. */
  scale: number;
  /** Error-feedback residual per tensor, updated in place. */
  residual: Weights;
  rng: Rng;
  /** L2 bound on the whole scaled input (residual included); 0 or absent = none. The clipped excess is dropped, not carried. */
  normBound?: number;
}

export function secureInputLength(lengths: readonly number[]): number {
  return lengths.reduce((a, b) => a + b, 0) + lengths.length;
}

function stochasticLevel(fraction: number, top: number, rng: Rng): number {
  const x = fraction * top;
  const q = Math.floor(x);
  return Math.min(top, rng.next() < x - q ? q + 1 : q);
}

export function encodeSecureInput(deltas: Weights, options: SecureInputOptions): Uint32Array {
  const { bits, clips, scale, residual, rng } = options;
  if (clips.length !== deltas.length || residual.length !== deltas.length) {
    throw new TributaryError('UPDATE_WRONG_LENGTH', `${deltas.length} tensors, ${clips.length} clips, ${residual.length} residuals`);
  }
  if (!(scale > 0) || !Number.isFinite(scale)) throw new TributaryError('BAD_REQUEST', `sample scale ${scale} is not positive`);
  const out = new Uint32Array(secureInputLength(deltas.map((d) => d.length)));
  const top = 2 ** bits - 1;
  deltas.forEach((d, t) => accumulate(residual[t]!, d, scale));
  if (options.normBound) boundInPlace(residual, options.normBound);
  let offset = 0;
  for (let t = 0; t < deltas.length; t++) {
    const clip = clips[t]!;
    if (!(clip > 0) || !Number.isFinite(clip)) throw new TributaryError('BAD_REQUEST', `clip ${clip} for tensor ${t}`);
    const carry = residual[t]!;
    let sumSq = 0;
    for (let i = 0; i < carry.length; i++) sumSq += carry[i]! * carry[i]!;
    if (!Number.isFinite(sumSq)) throw new TributaryError('UPDATE_NOT_FINITE', `tensor ${t}`);
    const rms = carry.length > 0 ? Math.sqrt(sumSq / carry.length) : 0;
    out.set(quantizeCarry(carry, bits, clip, rng).levels, offset);
    offset += carry.length;
    out[out.length - deltas.length + t] = stochasticLevel(Math.min(1, rms / clip), top, rng);
  }
  return out;
}

/** Scales `w` onto the L2 ball of radius `bound`, in place. */
function boundInPlace(w: Weights, bound: number): void {
  const { clipped, scaled } = clipToNorm(w, bound);
  if (scaled) clipped.forEach((t, i) => w[i]!.set(t));
}

export interface SecureSumReading {
  /** The sample-weighted mean update. */
  mean: Weights;
  /** Per tensor, the survivors' mean of min(1, rms(x)/clip). */
  rmsRatio: number[];
}

/**
 * Reads the unmasked sum of `survivors` inputs: a level q stands for −clip + q·step, so
 * Σ values = −N·clip + step·Σq, divided by the survivors' total sample weight.
 */
export function decodeSecureSum(
  sum: RingVector,
  options: { bits: QuantBits; clips: readonly number[]; lengths: readonly number[]; survivors: number; weight: number },
): SecureSumReading {
  const { bits, clips, lengths, survivors, weight } = options;
  if (sum.length !== secureInputLength(lengths)) {
    throw new TributaryError('UPDATE_WRONG_LENGTH', `sum has ${sum.length} values, expected ${secureInputLength(lengths)}`);
  }
  if (!(weight > 0) || survivors < 1) throw new TributaryError('INTERNAL', `cannot average ${survivors} inputs of weight ${weight}`);
  const top = 2 ** bits - 1;
  const mean: Weights = [];
  const rmsRatio: number[] = [];
  let offset = 0;
  lengths.forEach((n, t) => {
    const clip = clips[t]!;
    const step = quantizationStep(bits, clip);
    const base = -survivors * clip;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = (base + step * sum[offset + i]!) / weight;
    offset += n;
    mean.push(out);
    rmsRatio.push(sum[sum.length - lengths.length + t]! / top / survivors);
  });
  return { mean, rmsRatio };
}

/** Next round's clip per tensor: clipSigma × the estimated rms, growing by clipSigma while saturated. */
export function nextClips(clips: readonly number[], rmsRatio: readonly number[], clipSigma: number): number[] {
  return clips.map((clip, t) => {
    const ratio = rmsRatio[t] ?? 0;
    if (!(ratio > 0)) return clip;
    return Math.fround(Math.max(MIN_CLIP, clipSigma * Math.min(1, ratio) * clip));
  });
}
