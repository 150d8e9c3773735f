import { describe, expect, it } from 'vitest';
import { decodeMetricLimbs, encodeMetricLimbs, limbsPerSum, prependMetricSums, splitMetricSums } from '../../shared/codec/metric-sums.ts';
import { createRng } from '../../shared/random.ts';

describe('federated evaluation sums on the wire', () => {
  it('adds limbs of many devices in a 2^(b + ⌈log2 n⌉) ring without overflow, and reads back the exact fixed-point total', () => {
    for (const bits of [2, 4, 8, 16]) {
      const rng = createRng(bits);
      const n = 200;
      const devices = Array.from({ length: n }, () => Float64Array.from({ length: 5 }, (_, i) => (i === 0 ? 1 + (rng.nextUint32() % 5000) : rng.next() * 40_000)));
      const limbs = devices.map((sums) => encodeMetricLimbs(sums, 5, bits));
      // Every limb is a b-bit level, like a quantized model value: the ring sized for n of those holds their sum.
      expect(limbs.every((l) => l.every((v) => v < 2 ** bits))).toBe(true);
      const summed = limbs.reduce((acc, l) => acc.map((v, i) => v + l[i]!), new Array<number>(5 * limbsPerSum(bits)).fill(0));
      expect(Math.max(...summed)).toBeLessThan(2 ** (bits + Math.ceil(Math.log2(n))));
      const total = decodeMetricLimbs(summed, 5, bits);
      const fixed = (v: number) => Math.round(v * 2 ** 16) / 2 ** 16;
      const expected = Array.from({ length: 5 }, (_, i) => devices.reduce((a, d) => a + fixed(d[i]!), 0));
      total.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 6));
    }
  });

  it('sends zeros from a device not asked to evaluate', () => {
    expect([...encodeMetricLimbs(undefined, 3, 8)].every((v) => v === 0)).toBe(true);
    expect([...decodeMetricLimbs(encodeMetricLimbs(undefined, 3, 8), 3, 8)]).toEqual([0, 0, 0]);
  });

  it('round-trips a plain payload: the sums ahead of the update bytes', () => {
    const update = Uint8Array.of(1, 8, 0, 0, 9);
    const { sums, update: back } = splitMetricSums(prependMetricSums(Float64Array.of(12, 3.5, 7), 3, update), 3);
    expect([...sums]).toEqual([12, 3.5, 7]);
    expect([...back]).toEqual([...update]);
    expect(prependMetricSums(undefined, 0, update)).toBe(update);
  });

  it.each([
    ['NaN', Number.NaN, 'UPDATE_NOT_FINITE'],
    ['Infinity', Number.POSITIVE_INFINITY, 'UPDATE_NOT_FINITE'],
    ['a negative sum', -1, 'UPDATE_MALFORMED'],
    ['a sum past fixed point', 2 ** 40, 'UPDATE_MALFORMED'],
  ])('refuses %s in a device’s sums', (_, value, code) => {
    const payload = prependMetricSums(Float64Array.of(10, value), 2, Uint8Array.of(1));
    expect(() => splitMetricSums(payload, 2)).toThrow(expect.objectContaining({ code }));
    expect(() => encodeMetricLimbs(Float64Array.of(10, value), 2, 8)).toThrow(expect.objectContaining({ code }));
  });

  it('refuses a payload too short to hold the round’s sums', () => {
    expect(() => splitMetricSums(new Uint8Array(7), 1)).toThrow(expect.objectContaining({ code: 'UPDATE_MALFORMED' }));
  });
});
