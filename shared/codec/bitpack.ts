import { TributaryError } from '../errors.ts';

/**
 * Fixed-width unsigned integers packed into a little-endian bit stream: value i
 * occupies bits [i·width, (i+1)·width), bit 0 being the lowest bit of byte 0. Widths
 * 8, 16 and 32 are therefore plain little-endian bytes, u16s and u32s.
 */

function checkWidth(width: number): void {
  if (!Number.isInteger(width) || width < 1 || width > 32) {
    throw new TributaryError('INTERNAL', `bit width must be an integer in 1..32, got ${width}`);
  }
}

export function packedByteLength(count: number, width: number): number {
  return Math.ceil((count * width) / 8);
}

/**
 * Packs `values` at `width` bits each. Values are truncated to integers and only their
 * low `width` bits are kept (so out-of-range values wrap, they are not clamped): callers
 * must pass values in [0, 2^width).
 */
export function packBits(values: ArrayLike<number>, width: number): Uint8Array {
  checkWidth(width);
  const out = new Uint8Array(packedByteLength(values.length, width));
  packBitsInto(values, width, out, 0);
  return out;
}

/**
 * As packBits, but writes into `target` at byte `offset` (so an encoder can pack straight
 * into its output buffer). Returns the number of bytes written.
 */
export function packBitsInto(
  values: ArrayLike<number>,
  width: number,
  target: Uint8Array,
  offset: number,
): number {
  checkWidth(width);
  const count = values.length;
  const length = packedByteLength(count, width);
  if (!Number.isInteger(offset) || offset < 0 || offset + length > target.length) {
    throw new TributaryError('INTERNAL', `packing ${length} bytes at ${offset} overflows ${target.length}`);
  }
  const out = target.subarray(offset, offset + length);

  if (width === 8) {
    out.set(values); // typed-array conversion keeps the low 8 bits, as documented
  } else if (width === 16) {
    for (let i = 0, j = 0; i < count; i++, j += 2) {
      const v = values[i]! & 0xffff;
      out[j] = v;
      out[j + 1] = v >>> 8;
    }
  } else if (width === 32) {
    for (let i = 0, j = 0; i < count; i++, j += 4) {
      const v = values[i]! | 0;
      out[j] = v; // Uint8Array stores keep the low byte
      out[j + 1] = v >>> 8;
      out[j + 2] = v >>> 16;
      out[j + 3] = v >>> 24;
    }
  } else if (width <= 24) {
    // Fewer than 8 pending bits plus a ≤24-bit value always fit a 32-bit accumulator.
    const mask = (1 << width) - 1;
    let acc = 0;
    let pending = 0;
    let o = 0;
    for (let i = 0; i < count; i++) {
      acc |= (values[i]! & mask) << pending;
      pending += width;
      while (pending >= 8) {
        out[o++] = acc;
        acc >>>= 8;
        pending -= 8;
      }
    }
    if (pending > 0) out[o] = acc;
  } else {
    // 25..31 bits: too wide for the accumulator, so OR each value in byte by byte.
    out.fill(0);
    const mask = 2 ** width - 1;
    let bitPos = 0;
    for (let i = 0; i < count; i++, bitPos += width) {
      let v = (values[i]! & mask) >>> 0;
      let byte = bitPos >>> 3;
      const shift = bitPos & 7;
      out[byte] = out[byte]! | ((v << shift) & 0xff);
      v >>>= 8 - shift;
      let written = 8 - shift;
      while (written < width) {
        byte++;
        out[byte] = v;
        v >>>= 8;
        written += 8;
      }
    }
  }
  return length;
}

/**
 * Unpacks `count` values of `width` bits. `bytes` may be any view (any byteOffset) and
 * may be longer than needed; shorter is an UPDATE_MALFORMED error.
 */
export function unpackBits(bytes: Uint8Array, width: number, count: number): Uint32Array {
  checkWidth(width);
  if (!Number.isInteger(count) || count < 0) {
    throw new TributaryError('INTERNAL', `count must be a non-negative integer, got ${count}`);
  }
  const needed = packedByteLength(count, width);
  if (bytes.length < needed) {
    throw new TributaryError('UPDATE_MALFORMED', `${count} values of ${width} bits need ${needed} bytes, got ${bytes.length}`);
  }
  const out = new Uint32Array(count);

  if (width === 8) {
    out.set(bytes.subarray(0, count));
  } else if (width === 16) {
    for (let i = 0, j = 0; i < count; i++, j += 2) {
      out[i] = bytes[j]! | (bytes[j + 1]! << 8);
    }
  } else if (width === 32) {
    for (let i = 0, j = 0; i < count; i++, j += 4) {
      out[i] = bytes[j]! | (bytes[j + 1]! << 8) | (bytes[j + 2]! << 16) | (bytes[j + 3]! << 24);
    }
  } else if (width <= 24) {
    const mask = (1 << width) - 1;
    let acc = 0;
    let pending = 0;
    let p = 0;
    for (let i = 0; i < count; i++) {
      // pending < width ≤ 24 before each load, so the shifted byte stays within 32 bits.
      while (pending < width) {
        acc |= bytes[p++]! << pending;
        pending += 8;
      }
      out[i] = acc & mask;
      acc >>>= width;
      pending -= width;
    }
  } else {
    const mask = 2 ** width - 1;
    let bitPos = 0;
    for (let i = 0; i < count; i++, bitPos += width) {
      let byte = bitPos >>> 3;
      const shift = bitPos & 7;
      let v = bytes[byte]! >>> shift;
      let got = 8 - shift;
      while (got < width) {
        byte++;
        v |= bytes[byte]! << got; // bits shifted past 31 are beyond width anyway
        got += 8;
      }
      out[i] = v & mask;
    }
  }
  return out;
}
