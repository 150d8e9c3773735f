import { describe, expect, it } from 'vitest';
import { parseIdx } from '../../shared/data/idx.ts';

function idx(dtype: number, dims: number[], data: number[]): Uint8Array {
  const header = [0, 0, dtype, dims.length];
  for (const d of dims) header.push((d >>> 24) & 0xff, (d >>> 16) & 0xff, (d >>> 8) & 0xff, d & 0xff);
  return Uint8Array.from([...header, ...data]);
}

describe('parseIdx', () => {
  it('parses a 1-D label file', () => {
    const parsed = parseIdx(idx(0x08, [4], [3, 1, 4, 1]));
    expect(parsed.dims).toEqual([4]);
    expect([...parsed.data]).toEqual([3, 1, 4, 1]);
  });

  it('parses a 3-D image file with big-endian dimensions as a view, not a copy', () => {
    const pixels = Array.from({ length: 2 * 3 * 300 }, (_, i) => i & 0xff);
    const bytes = idx(0x08, [2, 3, 300], pixels);
    const parsed = parseIdx(bytes);
    expect(parsed.dims).toEqual([2, 3, 300]);
    expect([...parsed.data]).toEqual(pixels);
    expect(parsed.data.buffer).toBe(bytes.buffer);
    expect(parsed.data.byteOffset).toBe(4 + 3 * 4);
  });

  it('parses a file that is itself a view at a non-zero offset', () => {
    const file = idx(0x08, [2, 2], [9, 8, 7, 6]);
    const buffer = new Uint8Array(file.length + 5);
    buffer.set(file, 5);
    const parsed = parseIdx(buffer.subarray(5));
    expect(parsed.dims).toEqual([2, 2]);
    expect([...parsed.data]).toEqual([9, 8, 7, 6]);
  });

  it.each([
    ['bad magic', Uint8Array.from([1, 0, 8, 1, 0, 0, 0, 1, 5])],
    ['a non-byte element type', idx(0x0d, [1], [0, 0, 0, 0])],
    ['zero dimensions', Uint8Array.from([0, 0, 8, 0])],
    ['five dimensions', idx(0x08, [1, 1, 1, 1, 1], [7])],
    ['a truncated header', Uint8Array.from([0, 0, 8, 2, 0, 0, 0, 1])],
    ['too little data', idx(0x08, [2, 3], [1, 2, 3, 4, 5])],
    ['too much data', idx(0x08, [2, 3], [1, 2, 3, 4, 5, 6, 7])],
    ['dimensions whose product overflows', idx(0x08, [0xffffffff, 0xffffffff], [1])],
    ['fewer than four bytes', Uint8Array.from([0, 0])],
  ])('rejects %s with DATA_MALFORMED', (_name, bytes) => {
    expect(() => parseIdx(bytes)).toThrow(expect.objectContaining({ code: 'DATA_MALFORMED' }));
  });
});
