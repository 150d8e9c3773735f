import { beforeAll, describe, expect, it } from 'vitest';
import {
  createRound,
  pickDropped,
  neighboursForDropouts,
  simulateDrops,
  type Drops,
  type SimRound,
} from '../support/secagg-sim.ts';
import { cryptoReady, expandSeedSodium } from '../../shared/crypto/sodium.ts';
import { expandSeed, type SeedExpander } from '../../shared/secagg/mask-stream.ts';
import { safeThreshold } from '../../shared/secagg/parameters.ts';
import { createRng } from '../../shared/random.ts';
import { addInto, fromLevels, newRingVector, ringBits, type RingVector } from '../../shared/secagg/ring.ts';
import { maskInput, pairSign, sumLevels, unmaskSum, type PairMask } from '../../shared/secagg/math.ts';

const M = 1000;

function levels(m: number, bits: number, seed: number): Uint32Array {
  const rng = createRng(seed);
  return Uint32Array.from({ length: m }, () => rng.nextUint32() >>> (32 - bits));
}

/** Fixed, distinct 32-byte seeds, so the statistical tests below are deterministic. */
function fixedSeed(i: number): Uint8Array {
  const seed = new Uint8Array(32);
  seed[0] = i;
  return expandSeedSodium(seed, 32);
}

/** The whole-vector path of an expander, to compare with its streaming path. */
const wholeOnly: SeedExpander = (seed, bytes) => expandSeed(seed, bytes);

describe('masking arithmetic', () => {
  beforeAll(cryptoReady);

  it('gives the lower index the + sign of a pair', () => {
    expect(pairSign(2, 7)).toBe(1);
    expect(pairSign(7, 2)).toBe(-1);
    expect(() => pairSign(3, 3)).toThrow();
  });

  it('cancels pair masks in the sum and leaves the self masks for the server to remove', () => {
    for (const w of [10, 16, 17, 32]) {
      const x = [levels(M, 8, 1), levels(M, 8, 2), levels(M, 8, 3)];
      const s01 = fixedSeed(1);
      const s02 = fixedSeed(2);
      const s12 = fixedSeed(3);
      const b = [fixedSeed(10), fixedSeed(11), fixedSeed(12)];
      const pairs: PairMask[][] = [
        [{ seed: s01, sign: pairSign(0, 1) }, { seed: s02, sign: pairSign(0, 2) }],
        [{ seed: s01, sign: pairSign(1, 0) }, { seed: s12, sign: pairSign(1, 2) }],
        [{ seed: s02, sign: pairSign(2, 0) }, { seed: s12, sign: pairSign(2, 1) }],
      ];
      const total = newRingVector(w, M);
      x.forEach((xi, i) => addInto(total, maskInput(xi, w, b[i]!, pairs[i]!, expandSeed), w));
      expect(unmaskSum(total, w, b, [], expandSeed)).toEqual(sumLevels(x, w));
    }
  });

  it('removes the pair masks a survivor shared with a client that dropped before uploading', () => {
    const w = 12;
    const x = [levels(M, 8, 4), levels(M, 8, 5)];
    const s01 = fixedSeed(4);
    const b0 = fixedSeed(5);
    // Client 1 dropped: only client 0's upload (masked with +PRG(s01)) arrives.
    const y0 = maskInput(x[0]!, w, b0, [{ seed: s01, sign: pairSign(0, 1) }], expandSeed);
    expect(unmaskSum(y0, w, [b0], [{ seed: s01, sign: pairSign(0, 1) }], expandSeed)).toEqual(fromLevels(x[0]!, w));
    expect(unmaskSum(y0, w, [b0], [], expandSeed)).not.toEqual(fromLevels(x[0]!, w));
  });

  it('masks bit-identically with the Node stream, its whole-vector path and libsodium', () => {
    for (const w of [9, 16, 17, 24, 25, 32]) {
      const m = 40_001; // several 64 KiB blocks and a ragged tail
      const x = levels(m, 8, 6);
      const pairs: PairMask[] = [{ seed: fixedSeed(20), sign: 1 }, { seed: fixedSeed(21), sign: -1 }];
      const viaStream = maskInput(x, w, fixedSeed(22), pairs, expandSeed);
      expect(maskInput(x, w, fixedSeed(22), pairs, wholeOnly)).toEqual(viaStream);
      expect(maskInput(x, w, fixedSeed(22), pairs, expandSeedSodium)).toEqual(viaStream);
    }
  });

  it('unmasks in parts that add up to the whole, so the work can be split', () => {
    const w = 17;
    const x = levels(M, 8, 7);
    const b = fixedSeed(30);
    const dropped: PairMask[] = [{ seed: fixedSeed(31), sign: 1 }, { seed: fixedSeed(32), sign: -1 }, { seed: fixedSeed(33), sign: 1 }];
    const y = maskInput(x, w, b, dropped, expandSeed);
    const whole = unmaskSum(y, w, [b], dropped, expandSeed);
    const part = unmaskSum(y, w, [b], dropped.slice(0, 1), expandSeed);
    addInto(part, unmaskSum(newRingVector(w, M), w, [], dropped.slice(1), expandSeed), w);
    expect(part).toEqual(whole);
    expect(whole).toEqual(fromLevels(x, w));
  });

  it('sums levels in the ring, wrapping at 2^w', () => {
    const a = Uint32Array.of(255, 1);
    expect([...sumLevels([a, a], 9)]).toEqual([510, 2]);
    expect([...sumLevels([a, a, a], 9)]).toEqual([765 - 512, 3]);
  });
});

describe('SecAgg+ end to end (bench/secagg-sim.ts)', () => {
  beforeAll(cryptoReady);

  const rounds = new Map<string, SimRound>();
  async function round(n: number, complete: boolean): Promise<SimRound> {
    const key = `${n}/${complete}`;
    let r = rounds.get(key);
    if (!r) {
      const k = complete ? n - 1 : neighboursForDropouts(n, 0.3);
      r = await createRound({
        n,
        m: M,
        bits: 8,
        k,
        seed: n * 7 + (complete ? 1 : 0),
        threshold: safeThreshold,
      });
      rounds.set(key, r);
    }
    return r;
  }

  const phases = ['afterAdvertise', 'afterShare', 'afterUpload'] as const;
  const cases: Array<[number, boolean, string, number]> = [];
  for (const n of [3, 10, 50]) {
    for (const complete of [false, true]) {
      cases.push([n, complete, 'none', 0]);
      for (const phase of phases) for (const fraction of [0.1, 0.3]) cases.push([n, complete, phase, fraction]);
    }
  }

  it.each(cases)('n = %i (complete graph: %s), dropping %s %f: unmasks to the survivors\' sum bit for bit', async (n, complete, phase, fraction) => {
    const r = await round(n, complete);
    const dropped = pickDropped(n, fraction, n + fraction * 100);
    const drops: Drops = phase === 'none' ? {} : { [phase]: dropped };
    const result = await simulateDrops(r, drops);
    const gone = phase === 'afterUpload' ? 0 : dropped.length;
    expect(result.uploaded).toHaveLength(n - gone);
    expect(result.sum).toEqual(result.expected);
    expect(result.sum).toBeInstanceOf(ringBits(8, n) <= 16 ? Uint16Array : Uint32Array);
  });

  it.each([10, 50])('n = %i: survives drop-outs at all three phases in one round', async (n) => {
    for (const complete of [false, true]) {
      const r = await round(n, complete);
      const order = pickDropped(n, 0.3, 99);
      const third = Math.floor(order.length / 3);
      const result = await simulateDrops(r, {
        afterAdvertise: order.slice(0, third),
        afterShare: order.slice(third, 2 * third),
        afterUpload: order.slice(2 * third),
      });
      expect(result.sum).toEqual(result.expected);
    }
  });

  it('uses the libsodium expander just as well (the browser path)', async () => {
    const r = await createRound({ n: 10, m: M, bits: 8, seed: 5, threshold: 4, expand: expandSeedSodium });
    const result = await simulateDrops(r, { afterShare: [2, 7] });
    expect(result.sum).toEqual(result.expected);
  });

  it('aborts with SECAGG_TOO_FEW_SHARES when fewer than t holders of a needed secret answer', async () => {
    // Complete graph of 10: every secret has 10 holders; t = 8 survives at most 2 drop-outs.
    const r = await createRound({ n: 10, m: M, bits: 8, k: 9, seed: 6, threshold: 8 });
    expect((await simulateDrops(r, { afterShare: [1, 2] })).sum).toEqual((await simulateDrops(r, { afterShare: [1, 2] })).expected);
    await expect(simulateDrops(r, { afterShare: [1, 2, 3] })).rejects.toMatchObject({ code: 'SECAGG_TOO_FEW_SHARES' });
    await expect(simulateDrops(r, { afterUpload: [4, 5, 6] })).rejects.toMatchObject({ code: 'SECAGG_TOO_FEW_SHARES' });
    await expect(simulateDrops(r, { afterAdvertise: [0, 1, 2] })).rejects.toMatchObject({ code: 'SECAGG_TOO_FEW_SHARES' });
  });

  it('needs the shares it reconstructs from: t − 1 answering holders are not enough even with no drop-outs elsewhere', async () => {
    const r = await createRound({ n: 3, m: 10, bits: 8, seed: 7, threshold: 3 });
    await expect(simulateDrops(r, { afterUpload: [0] })).rejects.toMatchObject({ code: 'SECAGG_TOO_FEW_SHARES' });
  });
});

/** Upper tail of χ²(df) by the Wilson–Hilferty cube-root normal approximation. */
function chiSquarePValue(stat: number, df: number): number {
  const z = (Math.cbrt(stat / df) - (1 - 2 / (9 * df))) / Math.sqrt(2 / (9 * df));
  return 0.5 * erfc(z / Math.SQRT2);
}

/** Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7). */
function erfc(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const e = poly * Math.exp(-x * x);
  return x >= 0 ? e : 2 - e;
}

/** χ² of the words' top 6 bits against uniform over 64 bins, and its p-value. */
function uniformity(v: RingVector, w: number): number {
  const bins = 64;
  const counts = new Float64Array(bins);
  const shift = w - 6;
  for (let i = 0; i < v.length; i++) counts[v[i]! >>> shift]! += 1;
  const expected = v.length / bins;
  let stat = 0;
  for (const c of counts) stat += ((c - expected) * (c - expected)) / expected;
  return chiSquarePValue(stat, bins - 1);
}

describe('privacy of a masked upload', () => {
  beforeAll(cryptoReady);

  it('computes sensible χ² p-values', () => {
    expect(chiSquarePValue(63, 63)).toBeGreaterThan(0.4);
    expect(chiSquarePValue(63, 63)).toBeLessThan(0.6);
    expect(chiSquarePValue(103.4, 63)).toBeCloseTo(0.001, 3); // the tabulated 0.1 % critical value
  });

  it.each([12, 17])('looks uniform in Z(2^%i) once masked, while the levels themselves do not', (w) => {
    const x = levels(20_000, 8, 40);
    const pairs: PairMask[] = [{ seed: fixedSeed(41), sign: 1 }, { seed: fixedSeed(42), sign: -1 }];
    const masked = maskInput(x, w, fixedSeed(43), pairs, expandSeed);
    expect(uniformity(masked, w)).toBeGreaterThan(0.001);
    expect(uniformity(fromLevels(x, w), w)).toBeLessThan(0.001);
  });

  it('looks uniform even when every client sends the same update', () => {
    const w = 12;
    const x = new Uint32Array(20_000).fill(128);
    const masked = maskInput(x, w, fixedSeed(50), [{ seed: fixedSeed(51), sign: 1 }], expandSeed);
    expect(uniformity(masked, w)).toBeGreaterThan(0.001);
    expect(uniformity(fromLevels(x, w), w)).toBeLessThan(0.001);
  });
});
