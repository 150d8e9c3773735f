import { describe, expect, it } from 'vitest';
import { decodeUpdate, encodeUpdate } from '../../shared/codec/update-codec.ts';
import { TributaryError, type ErrorCode } from '../../shared/errors.ts';
import { weightedMean, type Weights } from '../../shared/ml/aggregate.ts';
import { RunningSum } from '../../shared/ml/running-sum.ts';
import type { UpdateBits } from '../../shared/protocol/task.ts';
import { createRng } from '../../shared/random.ts';
import { expectCode } from '../support/expect-code.ts';

// Odd lengths leave 2- and 4-bit tensors ending mid-byte; 0 is an empty tensor.
const LENGTHS = [300, 7, 0, 64, 1, 13];
const MLP_LENGTHS = [156_800, 200, 40_000, 200, 2000, 10];
const BITS: readonly UpdateBits[] = [2, 4, 8, 16, 32];

function tensors(lengths: readonly number[], seed: number, scale = 0.01): Weights {
  const rng = createRng(seed);
  return lengths.map((n) => {
    const t = new Float32Array(n);
    for (let i = 0; i < n; i++) t[i] = (rng.next() * 2 - 1) * scale;
    return t;
  });
}

function encoded(lengths: readonly number[], bits: UpdateBits, seed: number): Uint8Array {
  return encodeUpdate(tensors(lengths, seed), { bits, clipSigma: 3, rng: createRng(seed + 1000) });
}

/** The code `fn` throws, or undefined. */
function codeOf(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof TributaryError) return error.code;
    throw error;
  }
  return undefined;
}

/** The sum's full state, to compare bit for bit. */
function state(sum: RunningSum): Uint8Array {
  return sum.toBytes();
}

/** Distance in float32 units in the last place (both finite). */
function ulps(a: number, b: number): number {
  const view = new DataView(new ArrayBuffer(8));
  const ordered = (x: number) => {
    view.setFloat32(0, x);
    const bits = view.getInt32(0);
    return bits < 0 ? -2147483648 - bits : bits;
  };
  return Math.abs(ordered(a) - ordered(b));
}

describe('RunningSum', () => {
  const weights = [3, 0.5, 0, 17];

  it.each(BITS)('folds a %i-bit encoding to exactly the sum of the decoded update', (bits) => {
    const folded = new RunningSum(LENGTHS);
    const decoded = new RunningSum(LENGTHS);
    weights.forEach((w, k) => {
      const bytes = encoded(LENGTHS, bits, k + 1);
      folded.addEncoded(bytes, bits, w);
      decoded.add(decodeUpdate(bytes, LENGTHS, bits), w);
    });
    expect(state(folded)).toEqual(state(decoded));
    expect(folded.count).toBe(4);
    expect(folded.weight).toBe(20.5);
  });

  it('folds a tensor whose clip is zero (all zeros) as zeros', () => {
    const zeros = [new Float32Array(9), new Float32Array([0.5, -0.25])];
    const bytes = encodeUpdate(zeros, { bits: 8, clipSigma: 3, rng: createRng(1) });
    const folded = new RunningSum([9, 2]);
    folded.addEncoded(bytes, 8, 2);
    const decoded = new RunningSum([9, 2]);
    decoded.add(decodeUpdate(bytes, [9, 2], 8), 2);
    expect(state(folded)).toEqual(state(decoded));
    expect(folded.mean()[0]!.every((v) => v === 0)).toBe(true);
  });

  it('reproduces weightedMean of the same updates bit for bit', () => {
    const updates = [1, 2, 3, 4, 5, 6].map((k) => ({
      delta: decodeUpdate(encoded(MLP_LENGTHS, 8, k), MLP_LENGTHS, 8),
      weight: 10 * k + 0.25,
    }));
    const sum = new RunningSum(MLP_LENGTHS);
    for (const u of updates) sum.add(u.delta, u.weight);
    expect(sum.mean()).toEqual(weightedMean(updates));
  });

  it('merges partial sums into the sum of all their updates, to within one float32 ulp of the mean', () => {
    const bytes = [1, 2, 3, 4, 5, 6, 7].map((k) => encoded(MLP_LENGTHS, 8, k));
    const weightOf = (k: number) => 1 + ((k * 37) % 11);
    const whole = new RunningSum(MLP_LENGTHS);
    bytes.forEach((b, k) => whole.addEncoded(b, 8, weightOf(k)));
    const parts = [new RunningSum(MLP_LENGTHS), new RunningSum(MLP_LENGTHS), new RunningSum(MLP_LENGTHS)];
    bytes.forEach((b, k) => parts[k % 3]!.addEncoded(b, 8, weightOf(k)));
    const merged = new RunningSum(MLP_LENGTHS);
    for (const p of parts) merged.merge(p);

    expect(merged.count).toBe(whole.count);
    expect(merged.weight).toBe(whole.weight);
    // Merging only reassociates float64 additions (relative error ~1e-16 per term), so
    // the float32 means differ only where a float64 sum lies within that of a float32
    // rounding boundary: then by one ulp, never more.
    const a = merged.mean();
    const b = whole.mean();
    let differing = 0;
    a.forEach((t, k) => t.forEach((v, i) => {
      const d = ulps(v, b[k]![i]!);
      expect(d).toBeLessThanOrEqual(1);
      if (d > 0) differing++;
    }));
    expect(differing).toBeLessThan(10); // of 199,210; a handful at most
  });

  it('refuses to merge a sum over other tensor lengths', () => {
    const sum = new RunningSum([3, 4]);
    expectCode(() => sum.merge(new RunningSum([4, 3])), 'BAD_REQUEST');
    expectCode(() => sum.merge(new RunningSum([3])), 'BAD_REQUEST');
  });

  describe('rejects a malformed encoding with decodeUpdate\'s code and leaves the sum unchanged', () => {
    const valid8 = encoded(LENGTHS, 8, 5);
    const valid32 = encoded(LENGTHS, 32, 5);
    const edit = (bytes: Uint8Array, change: (copy: Uint8Array, view: DataView) => void) => {
      const copy = bytes.slice();
      change(copy, new DataView(copy.buffer));
      return copy;
    };
    const lastTensorValue = valid32.length - 4;
    const cases: Array<[string, Uint8Array, UpdateBits, ErrorCode]> = [
      ['shorter than the header', valid8.subarray(0, 3), 8, 'UPDATE_MALFORMED'],
      ['truncated in the last tensor', valid8.subarray(0, valid8.length - 1), 8, 'UPDATE_MALFORMED'],
      ['with a trailing byte', new Uint8Array([...valid8, 0]), 8, 'UPDATE_MALFORMED'],
      ['of an unknown version', edit(valid8, (c) => (c[0] = 2)), 8, 'UPDATE_MALFORMED'],
      ['of other bits than the task', valid8, 4, 'UPDATE_WRONG_BITS'],
      ['with another tensor count', edit(valid8, (_, v) => v.setUint16(2, 5, true)), 8, 'UPDATE_WRONG_LENGTH'],
      ['with a tensor of another length', edit(valid8, (_, v) => v.setUint32(4, 301, true)), 8, 'UPDATE_WRONG_LENGTH'],
      ['with a NaN clip', edit(valid8, (_, v) => v.setFloat32(8, Number.NaN, true)), 8, 'UPDATE_NOT_FINITE'],
      ['with an infinite clip', edit(valid8, (_, v) => v.setFloat32(8, Infinity, true)), 8, 'UPDATE_NOT_FINITE'],
      ['with a negative clip', edit(valid8, (_, v) => v.setFloat32(8, -1, true)), 8, 'UPDATE_NOT_FINITE'],
      ['with NaN in the last float32 tensor', edit(valid32, (_, v) => v.setFloat32(lastTensorValue, Number.NaN, true)), 32, 'UPDATE_NOT_FINITE'],
      ['with Infinity in the last float32 tensor', edit(valid32, (_, v) => v.setFloat32(lastTensorValue, -Infinity, true)), 32, 'UPDATE_NOT_FINITE'],
    ];

    it.each(cases)('%s', (_, bytes, bits, code) => {
      expect(codeOf(() => decodeUpdate(bytes, LENGTHS, bits))).toBe(code);
      const sum = new RunningSum(LENGTHS);
      sum.addEncoded(encoded(LENGTHS, bits, 9), bits, 2);
      const before = state(sum);
      expectCode(() => sum.addEncoded(bytes, bits, 1), code);
      expect(state(sum)).toEqual(before);
      expect(sum.count).toBe(1);
      expect(sum.weight).toBe(2);
    });
  });

  it.each([-1, Number.NaN, Infinity, -Infinity])('rejects weight %s and leaves the sum unchanged', (w) => {
    const sum = new RunningSum(LENGTHS);
    sum.add(tensors(LENGTHS, 1), 1);
    const before = state(sum);
    expectCode(() => sum.add(tensors(LENGTHS, 2), w), 'BAD_REQUEST');
    expectCode(() => sum.addEncoded(encoded(LENGTHS, 8, 2), 8, w), 'BAD_REQUEST');
    expect(state(sum)).toEqual(before);
    expect(sum.count).toBe(1);
  });

  it('rejects a delta of another shape and leaves the sum unchanged', () => {
    const sum = new RunningSum([3, 2]);
    const before = state(sum);
    expectCode(() => sum.add([new Float32Array(3)], 1), 'BAD_REQUEST');
    expectCode(() => sum.add([new Float32Array(3), new Float32Array(3)], 1), 'BAD_REQUEST');
    expect(state(sum)).toEqual(before);
    expect(sum.count).toBe(0);
  });

  it('counts a zero-weight update but has no mean until some weight arrives', () => {
    const sum = new RunningSum(LENGTHS);
    expectCode(() => sum.mean(), 'BAD_REQUEST');
    sum.addEncoded(encoded(LENGTHS, 8, 1), 8, 0);
    expect(sum.count).toBe(1);
    expectCode(() => sum.mean(), 'BAD_REQUEST');
    sum.add(tensors(LENGTHS, 2), 2);
    expect(sum.mean()).toEqual(weightedMean([{ delta: tensors(LENGTHS, 2), weight: 2 }]));
  });

  it('rejects tensor lengths that are not non-negative integers', () => {
    expectCode(() => new RunningSum([3, -1]), 'INTERNAL');
    expectCode(() => new RunningSum([2.5]), 'INTERNAL');
  });

  describe('toBytes / fromBytes', () => {
    // Three tensors: a 28-byte header padded to 32.
    const lengths = [5, 0, 3];
    const partial = () => {
      const sum = new RunningSum(lengths);
      sum.addEncoded(encoded(lengths, 8, 1), 8, 2.5);
      sum.addEncoded(encoded(lengths, 8, 2), 8, 4);
      return sum;
    };

    it('round-trips a partial exactly', () => {
      const sum = partial();
      const bytes = sum.toBytes();
      expect(bytes.length).toBe(32 + 8 * 8);
      const back = RunningSum.fromBytes(bytes, lengths);
      expect(back.toBytes()).toEqual(bytes);
      expect(back.count).toBe(2);
      expect(back.weight).toBe(6.5);
      expect(back.mean()).toEqual(sum.mean());
    });

    it('reads a partial from any offset of a larger buffer', () => {
      const bytes = partial().toBytes();
      const shifted = new Uint8Array(bytes.length + 3);
      shifted.set(bytes, 3);
      expect(RunningSum.fromBytes(shifted.subarray(3), lengths).toBytes()).toEqual(bytes);
    });

    it('round-trips an empty sum', () => {
      const empty = new RunningSum(lengths);
      const back = RunningSum.fromBytes(empty.toBytes(), lengths);
      expect(back.count).toBe(0);
      expect(back.weight).toBe(0);
    });

    const valid = partial().toBytes();
    const edit = (change: (view: DataView) => void) => {
      const copy = valid.slice();
      change(new DataView(copy.buffer));
      return copy;
    };
    const cases: Array<[string, Uint8Array, readonly number[]]> = [
      ['shorter than the header', valid.subarray(0, 15), lengths],
      ['truncated', valid.subarray(0, valid.length - 8), lengths],
      ['with a trailing byte', new Uint8Array([...valid, 0]), lengths],
      ['of an unknown version', edit((v) => v.setUint8(0, 2)), lengths],
      ['with a non-zero reserved byte', edit((v) => v.setUint8(1, 1)), lengths],
      ['for another tensor count', valid, [5, 0, 3, 0]],
      ['for other tensor lengths', valid, [3, 0, 5]],
      ['with non-zero padding', edit((v) => v.setUint8(30, 1)), lengths],
      ['with a negative weight', edit((v) => v.setFloat64(8, -1, true)), lengths],
      ['with a NaN weight', edit((v) => v.setFloat64(8, Number.NaN, true)), lengths],
      ['with an infinite value', edit((v) => v.setFloat64(32 + 8 * 7, Infinity, true)), lengths],
      ['with a NaN value', edit((v) => v.setFloat64(32, Number.NaN, true)), lengths],
      ['with a sum but no weight', edit((v) => v.setFloat64(8, 0, true)), lengths],
    ];
    it.each(cases)('rejects a partial %s', (_, bytes, expected) => {
      expectCode(() => RunningSum.fromBytes(bytes, expected), 'BAD_REQUEST');
    });
  });
});
