import { TributaryError } from '../errors.ts';

/**
 * Federated evaluation's metric sums on the wire. A round that evaluates carries, from
 * every participant, one vector of the objective's sample-weighted sums (zeros from a
 * participant not asked to evaluate):
 *
 * - plain rounds: float64s (little-endian) ahead of the update, inside the sealed payload;
 * - secure rounds: each sum in fixed point (2^-16), cut into base-2^b digits ("limbs") that
 *   are appended to the masked input. A limb is below 2^b like every quantized level, so
 *   the ring holds n of them without overflow, and the digit sums put back together give
 *   the exact total: the server learns only the totals, as it does for the model.
 */

/** Fixed-point fraction bits of a secure metric sum. */
export const METRIC_FRACTION_BITS = 16;
/** Bits of a fixed-point sum: values up to 2^(52 − 16) ≈ 6.9·10^10, far above any device's sample count × loss. */
const METRIC_BITS = 52;
const LARGEST_SUM = 2 ** (METRIC_BITS - METRIC_FRACTION_BITS);

/** Checks one device's sums: finite, non-negative, within what fixed point holds. */
export function checkMetricSums(sums: ArrayLike<number>): void {
  for (let i = 0; i < sums.length; i++) {
    const v = sums[i]!;
    if (!Number.isFinite(v)) throw new TributaryError('UPDATE_NOT_FINITE', `metric sum ${i} is ${v}`);
    if (v < 0 || v >= LARGEST_SUM) throw new TributaryError('UPDATE_MALFORMED', `metric sum ${i} is ${v}, outside [0, ${LARGEST_SUM})`);
  }
}

export const plainMetricBytes = (count: number) => 8 * count;

/** The plain payload: the sums (zeros without an evaluation) ahead of the encoded update. */
export function prependMetricSums(sums: ArrayLike<number> | undefined, count: number, update: Uint8Array): Uint8Array {
  if (count === 0) return update;
  if (sums && sums.length !== count) throw new TributaryError('UPDATE_WRONG_LENGTH', `${sums.length} metric sums, the round expects ${count}`);
  const out = new Uint8Array(plainMetricBytes(count) + update.length);
  const view = new DataView(out.buffer);
  for (let i = 0; i < count; i++) view.setFloat64(8 * i, sums?.[i] ?? 0, true);
  out.set(update, plainMetricBytes(count));
  return out;
}

/** Splits a plain payload into its checked sums and the update bytes. */
export function splitMetricSums(payload: Uint8Array, count: number): { sums: Float64Array; update: Uint8Array } {
  const head = plainMetricBytes(count);
  if (payload.length < head) throw new TributaryError('UPDATE_MALFORMED', `${payload.length} bytes cannot hold ${count} metric sums`);
  const view = new DataView(payload.buffer, payload.byteOffset, head);
  const sums = Float64Array.from({ length: count }, (_, i) => view.getFloat64(8 * i, true));
  checkMetricSums(sums);
  return { sums, update: payload.subarray(head) };
}

export const limbsPerSum = (bits: number) => Math.ceil(METRIC_BITS / bits);
export const metricLimbsLength = (count: number, bits: number) => count * limbsPerSum(bits);

/** A device's sums as limbs for the masked input (all zeros without an evaluation). */
export function encodeMetricLimbs(sums: ArrayLike<number> | undefined, count: number, bits: number): Uint32Array {
  const per = limbsPerSum(bits);
  const out = new Uint32Array(count * per);
  if (!sums) return out;
  if (sums.length !== count) throw new TributaryError('UPDATE_WRONG_LENGTH', `${sums.length} metric sums, the round expects ${count}`);
  checkMetricSums(sums);
  const base = 2n ** BigInt(bits);
  for (let i = 0; i < count; i++) {
    let fixed = BigInt(Math.round(sums[i]! * 2 ** METRIC_FRACTION_BITS));
    for (let j = 0; j < per; j++) {
      out[i * per + j] = Number(fixed % base);
      fixed /= base;
    }
  }
  return out;
}

/** The total sums from the unmasked limb sums: each digit position's sum weighed by its power of 2^b, exactly. */
export function decodeMetricLimbs(limbSums: ArrayLike<number>, count: number, bits: number): Float64Array {
  const per = limbsPerSum(bits);
  if (limbSums.length !== count * per) throw new TributaryError('UPDATE_WRONG_LENGTH', `${limbSums.length} limb sums for ${count} metric sums`);
  return Float64Array.from({ length: count }, (_, i) => {
    let total = 0n;
    for (let j = per - 1; j >= 0; j--) total = total * 2n ** BigInt(bits) + BigInt(limbSums[i * per + j]!);
    return Number(total) / 2 ** METRIC_FRACTION_BITS;
  });
}
