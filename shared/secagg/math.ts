import { TributaryError } from '../errors.ts';
import type { SeedExpander } from './mask-stream.ts';
import { addInto, addStreamAt, addStreamInto, fromLevels, newRingVector, ringStreamBytes, type RingVector } from './ring.ts';

/**
 * The masking arithmetic of SecAgg (Bonawitz et al. 2017) and SecAgg+ (Bell et al. 2020),
 * without the protocol around it. Client u uploads
 *
 *   y_u = x_u + PRG(b_u) + Σ_{v ∈ N(u)} sign(u, v) · PRG(s_uv)   in Z(2^w),
 *
 * where sign(u, v) = +1 if u < v else −1, so every pair's masks cancel in the sum over
 * clients that both uploaded. The server removes the survivors' self masks PRG(b_u) and,
 * for each survivor u and neighbour v that dropped before uploading, the PRG(s_uv) that u
 * added. PRG is the keystream of a SeedExpander (shared/mask-stream.ts).
 */

export interface PairMask {
  seed: Uint8Array;
  sign: 1 | -1;
}

/** The lower index adds the pair's mask, the higher one subtracts it. */
export function pairSign(me: number, other: number): 1 | -1 {
  if (me === other) throw new TributaryError('INTERNAL', `client ${me} cannot pair with itself`);
  return me < other ? 1 : -1;
}

/** Keystream is read in blocks of about 64 KiB: a block and the accumulator both stay in cache. */
const BLOCK_BYTES = 64 * 1024;

/** acc ± PRG(seed), streamed when the expander can stream. */
function applyMask(acc: RingVector, w: number, seed: Uint8Array, sign: 1 | -1, expand: SeedExpander): void {
  const valueBytes = ringStreamBytes(w);
  if (expand.open === undefined) {
    addStreamInto(acc, expand(seed, acc.length * valueBytes), w, sign);
    return;
  }
  const read = expand.open(seed);
  // Whole groups of four values, so three-byte values stay aligned to 32-bit words within each block.
  const blockValues = 4 * Math.floor(BLOCK_BYTES / valueBytes / 4);
  for (let offset = 0; offset < acc.length; offset += blockValues) {
    const values = Math.min(blockValues, acc.length - offset);
    addStreamAt(acc, offset, read(values * valueBytes), w, sign);
  }
}

/** y = x + PRG(selfSeed) + Σ sign · PRG(pair seed), in Z(2^w). */
export function maskInput(
  levels: Uint32Array,
  w: number,
  selfSeed: Uint8Array,
  pairs: readonly PairMask[],
  expand: SeedExpander,
): RingVector {
  const y = fromLevels(levels, w);
  applyMask(y, w, selfSeed, 1, expand);
  for (const pair of pairs) applyMask(y, w, pair.seed, pair.sign, expand);
  return y;
}

/**
 * Σ x_u over the clients whose masked inputs make up `maskedSum`: subtracts each
 * survivor's self mask and, for each (survivor u, dropped neighbour v), the mask u added
 * (`sign` is u's). Linear, so the work may be split: unmasking part of the masks from a
 * zero vector and adding the parts gives the same result.
 */
export function unmaskSum(
  maskedSum: RingVector,
  w: number,
  survivorSelfSeeds: readonly Uint8Array[],
  droppedPairMasks: readonly PairMask[],
  expand: SeedExpander,
): RingVector {
  const out = newRingVector(w, maskedSum.length);
  addInto(out, maskedSum, w); // also checks maskedSum's word type against w
  for (const seed of survivorSelfSeeds) applyMask(out, w, seed, -1, expand);
  for (const pair of droppedPairMasks) applyMask(out, w, pair.seed, pair.sign === 1 ? -1 : 1, expand);
  return out;
}

/** The plain sum in Z(2^w): what unmasking must reproduce bit for bit. */
export function sumLevels(vectors: readonly Uint32Array[], w: number): RingVector {
  const first = vectors[0];
  if (first === undefined) throw new TributaryError('INTERNAL', 'no vectors to sum');
  const acc = newRingVector(w, first.length);
  for (const levels of vectors) {
    if (levels.length !== first.length) {
      throw new TributaryError('UPDATE_WRONG_LENGTH', `${levels.length} levels, expected ${first.length}`);
    }
    addInto(acc, fromLevels(levels, w), w);
  }
  return acc;
}
