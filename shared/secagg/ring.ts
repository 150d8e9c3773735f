import { packBits, packedByteLength, unpackBits } from '../codec/bitpack.ts';
import { TributaryError } from '../errors.ts';

/**
 * Arithmetic in Z(2^w), the ring secure aggregation adds in. A vector is stored in 16-bit
 * words when w ≤ 16 and in 32-bit words otherwise: 2^w divides the word modulus, so
 * typed-array wrap-around followed by a mask is exact reduction mod 2^w. On the wire a
 * vector is bit-packed at w bits per value.
 *
 * (Over 300 lines on purpose: the add and subtract kernels are written out once per word
 * width — 16, 24 and 32 bits — so that each of these inner loops of masking and unmasking
 * runs over one typed-array type only, which keeps it monomorphic and fast.)
 */

export type RingVector = Uint16Array | Uint32Array;

/** Typed arrays use the platform's byte order; every platform we run on is little-endian. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function checkRingBits(w: number): void {
  if (!Number.isInteger(w) || w < 1 || w > 32) {
    throw new TributaryError('INTERNAL', `ring bits must be an integer in 1..32, got ${w}`);
  }
}

/** w = bits + ⌈log2 n⌉: the sum of n values below 2^bits cannot wrap. */
export function ringBits(bits: number, n: number): number {
  if (!Number.isInteger(bits) || bits < 1) throw new TributaryError('BAD_REQUEST', `bits must be a positive integer, got ${bits}`);
  if (!Number.isInteger(n) || n < 1) throw new TributaryError('BAD_REQUEST', `client count must be a positive integer, got ${n}`);
  const w = bits + (32 - Math.clz32(n - 1)); // 32 − clz32(n − 1) = ⌈log2 n⌉ for n ≥ 1
  if (w > 32) throw new TributaryError('BAD_REQUEST', `${n} clients at ${bits} bits need a ${w}-bit ring (max 32)`);
  return w;
}

export function ringWordBytes(w: number): 2 | 4 {
  checkRingBits(w);
  return w <= 16 ? 2 : 4;
}

/**
 * Bytes of keystream one mask value takes, little-endian: the word size, except 3 for 17- to
 * 24-bit rings. Keystream is most of masking's cost, and 3 bytes read a quarter less of it
 * than 32-bit words do while staying uniform mod 2^w.
 */
export function ringStreamBytes(w: number): 2 | 3 | 4 {
  checkRingBits(w);
  return w <= 16 ? 2 : w <= 24 ? 3 : 4;
}

export function newRingVector(w: number, m: number): RingVector {
  if (!Number.isInteger(m) || m < 0) throw new TributaryError('INTERNAL', `vector length must be a non-negative integer, got ${m}`);
  return ringWordBytes(w) === 2 ? new Uint16Array(m) : new Uint32Array(m);
}

/** 2^w − 1 as the kernels use it: for 32-bit words `& -1` is exactly ToInt32. */
function wordMask(w: number): number {
  return w === 32 ? -1 : 2 ** w - 1;
}

function checkVector(v: RingVector, w: number, what: string): void {
  const expected = ringWordBytes(w) === 2 ? Uint16Array : Uint32Array;
  if (!(v instanceof expected)) {
    throw new TributaryError('INTERNAL', `${what} must be a ${expected.name} for a ${w}-bit ring`);
  }
}

// The kernels: one function per word type and sign so each loop stays monomorphic, and
// unrolled by 8, which V8 runs about 1.7× faster than the plain loop. 32-bit words go
// through Int32Array views so every intermediate stays a small integer, never a double.

function add16(acc: Uint16Array, at: number, s: Uint16Array, mask: number): void {
  const n = s.length;
  const end8 = n - (n & 7);
  let i = 0;
  for (; i < end8; i += 8) {
    const j = at + i;
    acc[j] = (acc[j]! + s[i]!) & mask;
    acc[j + 1] = (acc[j + 1]! + s[i + 1]!) & mask;
    acc[j + 2] = (acc[j + 2]! + s[i + 2]!) & mask;
    acc[j + 3] = (acc[j + 3]! + s[i + 3]!) & mask;
    acc[j + 4] = (acc[j + 4]! + s[i + 4]!) & mask;
    acc[j + 5] = (acc[j + 5]! + s[i + 5]!) & mask;
    acc[j + 6] = (acc[j + 6]! + s[i + 6]!) & mask;
    acc[j + 7] = (acc[j + 7]! + s[i + 7]!) & mask;
  }
  for (; i < n; i++) acc[at + i] = (acc[at + i]! + s[i]!) & mask;
}

function sub16(acc: Uint16Array, at: number, s: Uint16Array, mask: number): void {
  const n = s.length;
  const end8 = n - (n & 7);
  let i = 0;
  for (; i < end8; i += 8) {
    const j = at + i;
    acc[j] = (acc[j]! - s[i]!) & mask;
    acc[j + 1] = (acc[j + 1]! - s[i + 1]!) & mask;
    acc[j + 2] = (acc[j + 2]! - s[i + 2]!) & mask;
    acc[j + 3] = (acc[j + 3]! - s[i + 3]!) & mask;
    acc[j + 4] = (acc[j + 4]! - s[i + 4]!) & mask;
    acc[j + 5] = (acc[j + 5]! - s[i + 5]!) & mask;
    acc[j + 6] = (acc[j + 6]! - s[i + 6]!) & mask;
    acc[j + 7] = (acc[j + 7]! - s[i + 7]!) & mask;
  }
  for (; i < n; i++) acc[at + i] = (acc[at + i]! - s[i]!) & mask;
}

function add32(acc: Int32Array, at: number, s: Int32Array, mask: number): void {
  const n = s.length;
  const end8 = n - (n & 7);
  let i = 0;
  for (; i < end8; i += 8) {
    const j = at + i;
    acc[j] = (acc[j]! + s[i]!) & mask;
    acc[j + 1] = (acc[j + 1]! + s[i + 1]!) & mask;
    acc[j + 2] = (acc[j + 2]! + s[i + 2]!) & mask;
    acc[j + 3] = (acc[j + 3]! + s[i + 3]!) & mask;
    acc[j + 4] = (acc[j + 4]! + s[i + 4]!) & mask;
    acc[j + 5] = (acc[j + 5]! + s[i + 5]!) & mask;
    acc[j + 6] = (acc[j + 6]! + s[i + 6]!) & mask;
    acc[j + 7] = (acc[j + 7]! + s[i + 7]!) & mask;
  }
  for (; i < n; i++) acc[at + i] = (acc[at + i]! + s[i]!) & mask;
}

function sub32(acc: Int32Array, at: number, s: Int32Array, mask: number): void {
  const n = s.length;
  const end8 = n - (n & 7);
  let i = 0;
  for (; i < end8; i += 8) {
    const j = at + i;
    acc[j] = (acc[j]! - s[i]!) & mask;
    acc[j + 1] = (acc[j + 1]! - s[i + 1]!) & mask;
    acc[j + 2] = (acc[j + 2]! - s[i + 2]!) & mask;
    acc[j + 3] = (acc[j + 3]! - s[i + 3]!) & mask;
    acc[j + 4] = (acc[j + 4]! - s[i + 4]!) & mask;
    acc[j + 5] = (acc[j + 5]! - s[i + 5]!) & mask;
    acc[j + 6] = (acc[j + 6]! - s[i + 6]!) & mask;
    acc[j + 7] = (acc[j + 7]! - s[i + 7]!) & mask;
  }
  for (; i < n; i++) acc[at + i] = (acc[at + i]! - s[i]!) & mask;
}

// Three-byte values come four to three 32-bit stream words. Bits above 24 that the shifts
// carry in are cut by the mask (w ≤ 24), so they need no separate masking.

function add24(acc: Int32Array, at: number, s: Int32Array, groups: number, mask: number): void {
  for (let g = 0, i = 0, j = at; g < groups; g++, i += 3, j += 4) {
    const a = s[i]!;
    const b = s[i + 1]!;
    const c = s[i + 2]!;
    acc[j] = (acc[j]! + a) & mask;
    acc[j + 1] = (acc[j + 1]! + ((a >>> 24) | (b << 8))) & mask;
    acc[j + 2] = (acc[j + 2]! + ((b >>> 16) | (c << 16))) & mask;
    acc[j + 3] = (acc[j + 3]! + (c >>> 8)) & mask;
  }
}

function sub24(acc: Int32Array, at: number, s: Int32Array, groups: number, mask: number): void {
  for (let g = 0, i = 0, j = at; g < groups; g++, i += 3, j += 4) {
    const a = s[i]!;
    const b = s[i + 1]!;
    const c = s[i + 2]!;
    acc[j] = (acc[j]! - a) & mask;
    acc[j + 1] = (acc[j + 1]! - ((a >>> 24) | (b << 8))) & mask;
    acc[j + 2] = (acc[j + 2]! - ((b >>> 16) | (c << 16))) & mask;
    acc[j + 3] = (acc[j + 3]! - (c >>> 8)) & mask;
  }
}

function asInt32(v: Uint32Array): Int32Array {
  return new Int32Array(v.buffer, v.byteOffset, v.length);
}

/** acc[at + i] ± s[i] mod 2^w for every i, with s already in the vector's word type. */
function applyWords(acc: RingVector, at: number, s: RingVector, w: number, sign: 1 | -1): void {
  const mask = wordMask(w);
  if (acc instanceof Uint16Array) {
    if (sign === 1) add16(acc, at, s as Uint16Array, mask);
    else sub16(acc, at, s as Uint16Array, mask);
  } else if (sign === 1) add32(asInt32(acc), at, asInt32(s as Uint32Array), mask);
  else sub32(asInt32(acc), at, asInt32(s as Uint32Array), mask);
}

function checkSign(sign: number): asserts sign is 1 | -1 {
  if (sign !== 1 && sign !== -1) throw new TributaryError('INTERNAL', `sign must be 1 or -1, got ${sign}`);
}

function checkSameShape(acc: RingVector, v: RingVector, w: number): void {
  checkVector(acc, w, 'accumulator');
  checkVector(v, w, 'operand');
  if (acc.length !== v.length) {
    throw new TributaryError('INTERNAL', `ring vectors differ in length: ${acc.length} vs ${v.length}`);
  }
}

/** acc += v mod 2^w. */
export function addInto(acc: RingVector, v: RingVector, w: number): void {
  checkSameShape(acc, v, w);
  applyWords(acc, 0, v, w, 1);
}

/** acc −= v mod 2^w. */
export function subtractInto(acc: RingVector, v: RingVector, w: number): void {
  checkSameShape(acc, v, w);
  applyWords(acc, 0, v, w, -1);
}

let scratch = new ArrayBuffer(0);

/**
 * `stream` as words of the vector's type, without copying when it is aligned (the
 * common case: fresh keystream buffers start at offset 0). Unaligned or big-endian input
 * is copied into a reused scratch buffer, so the result is only valid until the next call.
 */
function streamWords(stream: Uint8Array, wordBytes: 2 | 4): RingVector {
  const count = stream.length / wordBytes;
  if (LITTLE_ENDIAN && stream.byteOffset % wordBytes === 0) {
    return wordBytes === 2
      ? new Uint16Array(stream.buffer, stream.byteOffset, count)
      : new Uint32Array(stream.buffer, stream.byteOffset, count);
  }
  if (scratch.byteLength < stream.length) scratch = new ArrayBuffer(Math.max(stream.length, 2 * scratch.byteLength));
  const words = wordBytes === 2 ? new Uint16Array(scratch, 0, count) : new Uint32Array(scratch, 0, count);
  if (LITTLE_ENDIAN) {
    new Uint8Array(scratch, 0, stream.length).set(stream);
  } else {
    const view = new DataView(stream.buffer, stream.byteOffset, stream.length);
    for (let i = 0; i < count; i++) words[i] = wordBytes === 2 ? view.getUint16(2 * i, true) : view.getUint32(4 * i, true);
  }
  return words;
}

/** acc[at + i] ± value i of `stream` (ringStreamBytes(w) bytes each) mod 2^w. */
function applyStream(acc: RingVector, at: number, stream: Uint8Array, w: number, sign: 1 | -1): void {
  const bytes = ringStreamBytes(w);
  if (bytes !== 3) {
    applyWords(acc, at, streamWords(stream, bytes), w, sign);
    return;
  }
  const mask = wordMask(w);
  const count = stream.length / 3;
  const groups = count >> 2;
  const words = asInt32(streamWords(stream.subarray(0, 12 * groups), 4) as Uint32Array);
  const target = asInt32(acc as Uint32Array);
  if (sign === 1) add24(target, at, words, groups, mask);
  else sub24(target, at, words, groups, mask);
  for (let i = 4 * groups; i < count; i++) {
    const value = stream[3 * i]! | (stream[3 * i + 1]! << 8) | (stream[3 * i + 2]! << 16);
    target[at + i] = (target[at + i]! + sign * value) & mask;
  }
}

/**
 * acc ± stream mod 2^w, `stream` being exactly acc.length little-endian values of
 * ringStreamBytes(w) bytes each. This is the masking hot loop.
 */
export function addStreamInto(acc: RingVector, stream: Uint8Array, w: number, sign: 1 | -1): void {
  checkVector(acc, w, 'accumulator');
  const bytes = ringStreamBytes(w);
  if (stream.length !== acc.length * bytes) {
    throw new TributaryError('INTERNAL', `stream has ${stream.length} bytes for ${acc.length} values of ${bytes} bytes`);
  }
  checkSign(sign);
  applyStream(acc, 0, stream, w, sign);
}

/** As addStreamInto, for a block of values starting at word `offset`: masks are added a block at a time. */
export function addStreamAt(acc: RingVector, offset: number, stream: Uint8Array, w: number, sign: 1 | -1): void {
  checkVector(acc, w, 'accumulator');
  const count = stream.length / ringStreamBytes(w);
  if (!Number.isInteger(count) || !Number.isInteger(offset) || offset < 0 || offset + count > acc.length) {
    throw new TributaryError('INTERNAL', `a ${stream.length}-byte block at word ${offset} does not fit ${acc.length} words`);
  }
  checkSign(sign);
  applyStream(acc, offset, stream, w, sign);
}

/** Index of the first word ≥ 2^w, or −1; a cheap OR pass first since the answer is nearly always −1. */
function firstOutOfRange(v: ArrayLike<number>, w: number): number {
  if (w >= 32) return -1;
  let any = 0;
  for (let i = 0; i < v.length; i++) any |= v[i]!;
  if (any >>> w === 0) return -1;
  for (let i = 0; i < v.length; i++) if (v[i]! >>> w !== 0) return i;
  return -1;
}

/** Bytes of a vector of m words on the wire. */
export function ringWireBytes(m: number, w: number): number {
  checkRingBits(w);
  return packedByteLength(m, w);
}

/** The wire form: every word at exactly w bits (shared/bitpack.ts), so 8-bit updates of up to 256 clients take 2 bytes. */
export function encodeRing(v: RingVector, w: number): Uint8Array {
  checkVector(v, w, 'vector');
  const bad = firstOutOfRange(v, w);
  if (bad >= 0) throw new TributaryError('INTERNAL', `word ${bad} does not fit ${w} bits`);
  return packBits(v, w);
}

/** The inverse of encodeRing; rejects a wrong length and set padding bits. */
export function decodeRing(bytes: Uint8Array, w: number, m: number): RingVector {
  const expected = ringWireBytes(m, w);
  if (bytes.length !== expected) {
    throw new TributaryError('UPDATE_WRONG_LENGTH', `${bytes.length} bytes, expected ${expected} for ${m} words of ${w} bits`);
  }
  const padding = expected * 8 - m * w;
  if (padding > 0 && bytes[expected - 1]! >>> (8 - padding) !== 0) {
    throw new TributaryError('UPDATE_MALFORMED', 'padding bits after the last word are set');
  }
  const words = unpackBits(bytes, w, m);
  if (ringWordBytes(w) === 4) return words;
  const out = newRingVector(w, m);
  out.set(words);
  return out;
}

/** Quantized levels (each < 2^w) as a ring vector. */
export function fromLevels(levels: Uint32Array, w: number): RingVector {
  const out = newRingVector(w, levels.length);
  const bad = firstOutOfRange(levels, w);
  if (bad >= 0) throw new TributaryError('UPDATE_MALFORMED', `level ${levels[bad]} at ${bad} does not fit ${w} ring bits`);
  out.set(levels);
  return out;
}
