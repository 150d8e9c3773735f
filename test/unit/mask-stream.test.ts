import { beforeAll, describe, expect, it } from 'vitest';
import { cryptoReady, expandSeedSodium } from '../../shared/crypto/sodium.ts';
import { expandSeed, expandSeedNode } from '../../shared/secagg/mask-stream.ts';
import { expectCode } from '../support/expect-code.ts';

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
const counting = new Uint8Array(32).map((_, i) => i);

/** Computed with libsodium's randombytes_buf_deterministic; pinned so a change of either path shows. */
const VECTORS = [
  {
    seed: new Uint8Array(32),
    first64: 'a11f8f12d0876f736d2d8fd26e14c2de88f163e3271710c676c7384cb3621279fe60241816c5cf335d4e3fec25915fae69d0cba73ac4c39e44c2a59d52fae929',
  },
  {
    seed: counting,
    first64: '0d8e6cc68715648926732e7ea73250cfaf2d58422083904c841a8ba33b986111f346ba50723a68ae283524a6bded09f83be6b80595856f72e25b86918e8b114b',
  },
];

describe('mask expansion', () => {
  beforeAll(cryptoReady);

  it('has a Node fast path under Node and uses it by default', () => {
    expect(expandSeedNode).toBeDefined();
    expect(expandSeed).toBe(expandSeedNode);
  });

  it('matches the pinned libsodium test vectors on both paths', () => {
    for (const { seed, first64 } of VECTORS) {
      expect(hex(expandSeedSodium(seed, 64))).toBe(first64);
      expect(hex(expandSeedNode!(seed, 64))).toBe(first64);
    }
  });

  it('is bit-identical to libsodium for many seeds and lengths, including ragged and > 1 MiB ones', () => {
    const seeds = [new Uint8Array(32), counting, new Uint8Array(32).fill(0xff), expandSeedSodium(counting, 32)];
    const lengths = [0, 1, 31, 63, 64, 65, 1000, 65_535, 65_536, 65_537, 200_002, (1 << 20) + 13, 3 * (1 << 20) + 7];
    for (const seed of seeds) {
      for (const n of lengths) {
        const a = expandSeedSodium(seed, n);
        const b = expandSeedNode!(seed, n);
        expect(b.length).toBe(n);
        expect(hex(b) === hex(a), `seed ${hex(seed).slice(0, 8)}…, ${n} bytes`).toBe(true);
      }
    }
  });

  it('streams the same keystream when read in uneven blocks', () => {
    const whole = expandSeedSodium(counting, 300_000);
    const read = expandSeedNode!.open!(counting);
    const parts: Uint8Array[] = [];
    for (const size of [1, 63, 64, 1000, 65_536, 70_000, 163_336]) parts.push(read(size).slice());
    expect(hex(Buffer.concat(parts))).toBe(hex(whole));
  });

  it('gives different streams for seeds differing in one bit', () => {
    const other = counting.slice();
    other[31] = other[31]! ^ 0x80;
    expect(hex(expandSeed(other, 64))).not.toBe(hex(expandSeed(counting, 64)));
  });

  it('refuses a seed that is not 32 bytes', () => {
    expectCode(() => expandSeedNode!(new Uint8Array(16), 64), 'INTERNAL');
    expectCode(() => expandSeedSodium(new Uint8Array(16), 64), 'INTERNAL');
  });
});
