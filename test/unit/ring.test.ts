import { describe, expect, it } from 'vitest';
import { createRng } from '../../shared/random.ts';
import {
  addInto,
  addStreamAt,
  addStreamInto,
  decodeRing,
  encodeRing,
  fromLevels,
  newRingVector,
  ringBits,
  ringStreamBytes,
  ringWordBytes,
  subtractInto,
  type RingVector,
} from '../../shared/secagg/ring.ts';
import { expectCode } from '../support/expect-code.ts';

const WIDTHS = [9, 12, 16, 17, 24, 32];

function randomVector(w: number, m: number, seed: number): RingVector {
  const rng = createRng(seed);
  const v = newRingVector(w, m);
  for (let i = 0; i < m; i++) v[i] = w === 32 ? rng.nextUint32() : rng.nextUint32() % 2 ** w;
  return v;
}

/** Little-endian bytes of arbitrary words (not reduced), as a keystream would be. */
function randomStream(wordBytes: number, m: number, seed: number): Uint8Array {
  const rng = createRng(seed);
  return Uint8Array.from({ length: m * wordBytes }, () => rng.nextUint32() & 0xff);
}

function wordsOf(stream: Uint8Array, wordBytes: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < stream.length; i += wordBytes) {
    let v = 0;
    for (let b = wordBytes - 1; b >= 0; b--) v = v * 256 + stream[i + b]!;
    out.push(v);
  }
  return out;
}

describe('ringBits', () => {
  it('adds ⌈log2 n⌉ bits so n values cannot wrap', () => {
    expect(ringBits(8, 1)).toBe(8);
    expect(ringBits(8, 2)).toBe(9);
    expect(ringBits(8, 3)).toBe(10);
    expect(ringBits(8, 256)).toBe(16);
    expect(ringBits(8, 257)).toBe(17);
    expect(ringBits(8, 500)).toBe(17);
    expect(ringBits(16, 65_536)).toBe(32);
  });

  it('refuses rings wider than 32 bits and nonsense inputs', () => {
    expectCode(() => ringBits(16, 65_537), 'BAD_REQUEST');
    expectCode(() => ringBits(8, 0), 'BAD_REQUEST');
    expectCode(() => ringBits(0, 4), 'BAD_REQUEST');
  });

  it('stores 16-bit words up to 16 bits and 32-bit words above', () => {
    expect(ringWordBytes(9)).toBe(2);
    expect(ringWordBytes(16)).toBe(2);
    expect(ringWordBytes(17)).toBe(4);
    expect(newRingVector(16, 3)).toBeInstanceOf(Uint16Array);
    expect(newRingVector(17, 3)).toBeInstanceOf(Uint32Array);
  });
});

describe('ring arithmetic', () => {
  it.each(WIDTHS)('subtracting undoes adding at w = %i', (w) => {
    const a = randomVector(w, 1001, 1);
    const b = randomVector(w, 1001, 2);
    const acc = a.slice();
    addInto(acc, b, w);
    expect(acc).not.toEqual(a);
    subtractInto(acc, b, w);
    expect(acc).toEqual(a);
  });

  it.each(WIDTHS)('wraps around at 2^%i', (w) => {
    const top = 2 ** w - 1;
    const acc = newRingVector(w, 3);
    acc.set([top, top, 0]);
    const one = newRingVector(w, 3);
    one.set([1, top, 1]);
    addInto(acc, one, w);
    expect([...acc]).toEqual([0, top - 1, 1]);
    subtractInto(acc, one, w);
    expect([...acc]).toEqual([top, top, 0]);
    const zero = newRingVector(w, 3);
    subtractInto(zero, one, w); // 0 − x = 2^w − x
    expect([...zero]).toEqual([top, 1, top]);
  });

  it.each(WIDTHS)('matches BigInt arithmetic mod 2^%i for random vectors of ragged length', (w) => {
    const m = 1013; // not a multiple of the 8-way unrolling
    const a = randomVector(w, m, 3);
    const b = randomVector(w, m, 4);
    const sum = a.slice();
    addInto(sum, b, w);
    const diff = a.slice();
    subtractInto(diff, b, w);
    const mod = 1n << BigInt(w);
    for (let i = 0; i < m; i++) {
      const x = BigInt(a[i]!);
      const y = BigInt(b[i]!);
      expect(BigInt(sum[i]!)).toBe((x + y) % mod);
      expect(BigInt(diff[i]!)).toBe((((x - y) % mod) + mod) % mod);
    }
  });

  it.each(WIDTHS)('adds and subtracts a keystream reduced mod 2^%i', (w) => {
    const m = 517;
    const wordBytes = ringStreamBytes(w);
    const stream = randomStream(wordBytes, m, 5);
    const words = wordsOf(stream, wordBytes);
    const acc = randomVector(w, m, 6);
    const before = acc.slice();
    addStreamInto(acc, stream, w, 1);
    const mod = 2 ** w;
    for (let i = 0; i < m; i++) expect(acc[i]).toBe((before[i]! + (words[i]! % mod)) % mod);
    addStreamInto(acc, stream, w, -1);
    expect(acc).toEqual(before);
  });

  it('reads a keystream at an odd byte offset as well as an aligned one', () => {
    for (const w of [12, 20, 28]) {
      const m = 103;
      const wordBytes = ringStreamBytes(w);
      const backing = new Uint8Array(m * wordBytes + 1);
      backing.set(randomStream(wordBytes, m, 7), 1);
      const unaligned = backing.subarray(1);
      const aligned = unaligned.slice();
      const a = newRingVector(w, m);
      const b = newRingVector(w, m);
      addStreamInto(a, unaligned, w, 1);
      addStreamInto(b, aligned, w, 1);
      expect(a).toEqual(b);
    }
  });

  it('adds a block of keystream at a word offset, leaving the rest alone', () => {
    for (const w of [17, 25]) {
      const acc = newRingVector(w, 10);
      const block = randomStream(ringStreamBytes(w), 3, 8);
      addStreamAt(acc, 4, block, w, 1);
      const words = wordsOf(block, ringStreamBytes(w)).map((v) => v % 2 ** w);
      expect([...acc]).toEqual([0, 0, 0, 0, ...words, 0, 0, 0]);
      expectCode(() => addStreamAt(acc, 8, block, w, 1), 'INTERNAL');
    }
  });

  it('reads three keystream bytes a value for 17- to 24-bit rings, whatever the tail', () => {
    expect([16, 17, 24, 25].map(ringStreamBytes)).toEqual([2, 3, 3, 4]);
    for (let m = 1; m <= 9; m++) {
      const stream = randomStream(3, m, 9 + m);
      const acc = newRingVector(24, m);
      addStreamInto(acc, stream, 24, 1);
      expect([...acc]).toEqual(Array.from({ length: m }, (_, i) => stream[3 * i]! + 256 * stream[3 * i + 1]! + 65_536 * stream[3 * i + 2]!));
    }
  });

  it('refuses a stream of the wrong length, a vector of the wrong word type and a bad sign', () => {
    expectCode(() => addStreamInto(newRingVector(12, 4), new Uint8Array(7), 12, 1), 'INTERNAL');
    expectCode(() => addInto(new Uint32Array(4), new Uint32Array(4), 12), 'INTERNAL');
    expectCode(() => addInto(newRingVector(12, 4), newRingVector(12, 5), 12), 'INTERNAL');
    expectCode(() => addStreamInto(newRingVector(12, 4), new Uint8Array(8), 12, 2 as 1), 'INTERNAL');
  });
});

describe('ring encoding', () => {
  it.each(WIDTHS)('round-trips bit-packed at w = %i bits a word', (w) => {
    const v = randomVector(w, 333, 9);
    const bytes = encodeRing(v, w);
    expect(bytes).toHaveLength(Math.ceil((333 * w) / 8));
    expect(decodeRing(bytes, w, 333)).toEqual(v);
    expect(decodeRing(bytes, w, 333)).toBeInstanceOf(ringWordBytes(w) === 2 ? Uint16Array : Uint32Array);
  });

  it('lays words out little-endian, the first word in the lowest bits', () => {
    const v16 = newRingVector(16, 1);
    v16[0] = 0x1234;
    expect([...encodeRing(v16, 16)]).toEqual([0x34, 0x12]);
    const v32 = newRingVector(32, 1);
    v32[0] = 0x89abcdef;
    expect([...encodeRing(v32, 32)]).toEqual([0xef, 0xcd, 0xab, 0x89]);
    const v12 = newRingVector(12, 2);
    v12[0] = 0xabc;
    v12[1] = 0x123;
    expect([...encodeRing(v12, 12)]).toEqual([0xbc, 0x3a, 0x12]);
  });

  it('decodes from a view at an odd offset', () => {
    const v = randomVector(24, 50, 10);
    const bytes = encodeRing(v, 24);
    const backing = new Uint8Array(bytes.length + 3);
    backing.set(bytes, 3);
    expect(decodeRing(backing.subarray(3), 24, 50)).toEqual(v);
  });

  it('rejects a wrong length', () => {
    const bytes = encodeRing(randomVector(12, 10, 11), 12);
    expect(bytes).toHaveLength(15);
    expectCode(() => decodeRing(bytes, 12, 11), 'UPDATE_WRONG_LENGTH');
    expectCode(() => decodeRing(bytes.subarray(0, 14), 12, 10), 'UPDATE_WRONG_LENGTH');
  });

  it('rejects set padding bits, so one vector has one encoding', () => {
    const bytes = encodeRing(randomVector(12, 11, 12), 12); // 132 bits: 4 bits of padding
    expect(decodeRing(bytes, 12, 11)).toHaveLength(11);
    bytes[16]! |= 0x80;
    expectCode(() => decodeRing(bytes, 12, 11), 'UPDATE_MALFORMED');
  });

  it('refuses to encode a word at or above 2^w', () => {
    const v = newRingVector(12, 4);
    v[2] = 4096;
    expectCode(() => encodeRing(v, 12), 'INTERNAL');
    v[2] = 4095;
    expect(decodeRing(encodeRing(v, 12), 12, 4)[2]).toBe(4095);
  });
});

describe('fromLevels', () => {
  it('copies levels into the ring word type', () => {
    const levels = Uint32Array.of(0, 1, 255, 128);
    const v = fromLevels(levels, 9);
    expect(v).toBeInstanceOf(Uint16Array);
    expect([...v]).toEqual([0, 1, 255, 128]);
    expect(fromLevels(levels, 17)).toBeInstanceOf(Uint32Array);
  });

  it('rejects a level that does not fit the ring', () => {
    expectCode(() => fromLevels(Uint32Array.of(3, 512, 1), 9), 'UPDATE_MALFORMED');
    expect([...fromLevels(Uint32Array.of(0xffffffff), 32)]).toEqual([0xffffffff]);
  });
});
