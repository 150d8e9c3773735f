import { TributaryError } from '../errors.ts';
import type { Weights } from './aggregate.ts';

/**
 * L2 norms and distances of whole updates, all tensors taken as one vector. Sums run in
 * float64: a float32 sum of squares over 10⁵ values would lose most of its low bits.
 */

/** ‖w‖₂. */
export function l2Norm(w: Weights): number {
  let sum = 0;
  for (const t of w) {
    for (let i = 0; i < t.length; i++) sum += t[i]! * t[i]!;
  }
  return Math.sqrt(sum);
}

/** ‖a − b‖₂². */
export function squaredDistance(a: Weights, b: Weights): number {
  if (a.length !== b.length) throw new TributaryError('BAD_REQUEST', `cannot measure a distance: ${a.length} tensors vs ${b.length}`);
  let sum = 0;
  for (let t = 0; t < a.length; t++) {
    const x = a[t]!;
    const y = b[t]!;
    if (x.length !== y.length) throw new TributaryError('BAD_REQUEST', `cannot measure a distance: tensor ${t} has ${x.length} values vs ${y.length}`);
    for (let i = 0; i < x.length; i++) {
      const d = x[i]! - y[i]!;
      sum += d * d;
    }
  }
  return sum;
}

export interface Clipped {
  /** New arrays: `w` itself when it was within the bound, scaled onto the bound otherwise. */
  clipped: Weights;
  /** ‖w‖₂ before clipping. */
  norm: number;
  /** Whether w was longer than the bound and was scaled down. */
  scaled: boolean;
}

/**
 * w · min(1, bound/‖w‖). The scaled values are rounded toward zero to float32, so the
 * clipped update's norm never exceeds the bound by a rounding error (the guarantee central
 * and distributed DP count on).
 */
export function clipToNorm(w: Weights, bound: number): Clipped {
  if (!(bound > 0)) throw new TributaryError('INTERNAL', `a clip bound must be positive, got ${bound}`);
  const norm = l2Norm(w);
  if (norm <= bound) return { clipped: w.map((t) => t.slice()), norm, scaled: false };
  const scale = bound / norm;
  const clipped = w.map((t) => {
    const out = new Float32Array(t.length);
    const bits = new Int32Array(out.buffer);
    for (let i = 0; i < t.length; i++) {
      const exact = t[i]! * scale;
      out[i] = exact;
      // Rounded away from zero: one float32 step back (sign-magnitude, so bits − 1 for either sign).
      if (Math.abs(out[i]!) > Math.abs(exact)) bits[i] = bits[i]! - 1;
    }
    return out;
  });
  return { clipped, norm, scaled: true };
}
