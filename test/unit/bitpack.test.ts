import { describe, expect, it } from 'vitest';
import { packBits, packedByteLength, unpackBits } from '../../shared/codec/bitpack.ts';
import { TributaryError } from '../../shared/errors.ts';
import { createRng } from '../../shared/random.ts';
import { expectCode } from '../support/expect-code.ts';

const WIDTHS = Array.from({ length: 32 }, (_, i) => i + 1);

function randomValues(width: number, count: number, seed: number): Uint32Array {
  const rng = createRng(seed);
  const max = 2 ** width - 1;
  const values = new Uint32Array(count);
  for (let i = 0; i < count; i++) values[i] = Math.floor(rng.next() * (max + 1));
  // Always include the extremes, at odd positions so they straddle byte boundaries.
  values[0] = 0;
  values[1] = max;
  values[count - 2] = max;
  values[count - 1] = 0;
  return values;
}


describe('packBits / unpackBits', () => {
  it.each(WIDTHS)('round-trips random %i-bit values including 0 and the maximum', (width) => {
    const values = randomValues(width, 1001, width);
    const packed = packBits(values, width);
    expect(packed.length).toBe(packedByteLength(values.length, width));
    expect(unpackBits(packed, width, values.length)).toEqual(values);
  });

  it('computes byte lengths as ceil(count × width / 8)', () => {
    expect(packedByteLength(0, 7)).toBe(0);
    expect(packedByteLength(1, 1)).toBe(1);
    expect(packedByteLength(8, 1)).toBe(1);
    expect(packedByteLength(9, 1)).toBe(2);
    expect(packedByteLength(3, 4)).toBe(2);
    expect(packedByteLength(199_210, 8)).toBe(199_210);
    expect(packedByteLength(5, 3)).toBe(2);
    expect(packedByteLength(3, 32)).toBe(12);
  });

  it('lays values out little-endian in the bit stream', () => {
    expect([...packBits([1, 2, 3, 0], 2)]).toEqual([0b00_11_10_01]);
    expect([...packBits([0xf, 0x1], 4)]).toEqual([0x1f]);
    expect([...packBits([0x1234], 16)]).toEqual([0x34, 0x12]);
    expect([...packBits([0x12345678], 32)]).toEqual([0x78, 0x56, 0x34, 0x12]);
    expect([...packBits([0b101, 0b011, 0b111], 3)]).toEqual([0b11_011_101, 0b1]);
  });

  it('keeps only the low bits of out-of-range values', () => {
    expect(unpackBits(packBits([5, 256 + 7], 3), 3, 2)).toEqual(new Uint32Array([5, 7]));
    expect(unpackBits(packBits([0x1ff], 8), 8, 1)).toEqual(new Uint32Array([0xff]));
  });

  it.each([3, 8, 16, 27, 32])('reads a %i-bit view that starts at a non-zero byte offset', (width) => {
    const values = randomValues(width, 100, 77);
    const packed = packBits(values, width);
    const buffer = new Uint8Array(packed.length + 11);
    buffer.fill(0xff);
    buffer.set(packed, 5);
    const view = buffer.subarray(5, 5 + packed.length);
    expect(view.byteOffset).toBe(5);
    expect(unpackBits(view, width, values.length)).toEqual(values);
  });

  it('ignores bytes beyond the packed length', () => {
    const packed = packBits([1, 2, 3], 5);
    const longer = new Uint8Array(packed.length + 3).fill(0xff);
    longer.set(packed);
    expect(unpackBits(longer, 5, 3)).toEqual(new Uint32Array([1, 2, 3]));
  });

  it.each([1, 5, 8, 16, 32])('throws UPDATE_MALFORMED on truncated %i-bit input', (width) => {
    const packed = packBits(randomValues(width, 40, 1), width);
    expectCode(() => unpackBits(packed.subarray(0, packed.length - 1), width, 40), 'UPDATE_MALFORMED');
  });

  it('rejects a width outside 1..32', () => {
    expect(() => packBits([1], 0)).toThrow(TributaryError);
    expect(() => unpackBits(new Uint8Array(8), 33, 1)).toThrow(TributaryError);
  });
});
