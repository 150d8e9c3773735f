import { describe, expect, it } from 'vitest';
import { TributaryError } from '../../shared/errors.ts';
import { quantizationStep } from '../../shared/codec/quantize.ts';
import { createRng } from '../../shared/random.ts';
import { decodeUpdate, encodeUpdate } from '../../shared/codec/update-codec.ts';
import { expectCode } from '../support/expect-code.ts';

const MODEL_LENGTHS = [156_800, 200, 40_000, 200, 2000, 10];

function tensors(lengths: readonly number[], seed: number, scale = 0.01): Float32Array[] {
  const rng = createRng(seed);
  return lengths.map((n) => {
    const t = new Float32Array(n);
    for (let i = 0; i < n; i++) t[i] = (rng.next() * 2 - 1) * scale;
    return t;
  });
}

function maxAbs(t: Float32Array): number {
  let m = 0;
  for (const v of t) m = Math.max(m, Math.abs(v));
  return m;
}


describe('encodeUpdate / decodeUpdate', () => {
  const lengths = [300, 7, 0, 64];

  it('round-trips float32 updates exactly at 32 bits', () => {
    const deltas = tensors(lengths, 1);
    const bytes = encodeUpdate(deltas, { bits: 32, clipSigma: 3, rng: createRng(1) });
    expect(decodeUpdate(bytes, lengths, 32)).toEqual(deltas);
  });

  it.each([2, 4, 8, 16] as const)('round-trips %i-bit updates to within one step per tensor', (bits) => {
    const deltas = tensors(lengths, 2);
    const bytes = encodeUpdate(deltas, { bits, clipSigma: Infinity, rng: createRng(2) });
    const decoded = decodeUpdate(bytes, lengths, bits);
    expect(decoded.map((t) => t.length)).toEqual(lengths);
    deltas.forEach((delta, t) => {
      const step = quantizationStep(bits, maxAbs(delta));
      for (let i = 0; i < delta.length; i++) {
        expect(Math.abs(decoded[t]![i]! - delta[i]!)).toBeLessThanOrEqual(step * (1 + 1e-6));
      }
    });
  });

  it('decodes an all-zero tensor to zeros', () => {
    const deltas = [new Float32Array(9), new Float32Array([0.5, -0.5])];
    const decoded = decodeUpdate(encodeUpdate(deltas, { bits: 4, clipSigma: 3, rng: createRng(1) }), [9, 2], 4);
    expect(decoded[0]!.every((v) => v === 0)).toBe(true);
  });

  it('updates the error-feedback residual so it holds what the decoded update missed', () => {
    const deltas = tensors(lengths, 3);
    const residual = lengths.map((n) => new Float32Array(n));
    const decoded = decodeUpdate(encodeUpdate(deltas, { bits: 2, clipSigma: 2, rng: createRng(3), residual }), lengths, 2);
    deltas.forEach((delta, t) => {
      for (let i = 0; i < delta.length; i++) {
        expect(residual[t]![i]).toBe(Math.fround(delta[i]! - decoded[t]![i]!));
      }
    });
  });

  it('ignores the residual at 32 bits', () => {
    const deltas = tensors([5], 4);
    const residual = [new Float32Array(5).fill(1)];
    const decoded = decodeUpdate(encodeUpdate(deltas, { bits: 32, clipSigma: 2, rng: createRng(1), residual }), [5], 32);
    expect(decoded).toEqual(deltas);
    expect(residual[0]!.every((v) => v === 1)).toBe(true);
  });

  it.each([[2, 0.26], [4, 0.51], [8, 1.01], [16, 2.01], [32, 4.01]] as const)(
    'encodes the 199,210-parameter model at %i bits in at most %f bytes per parameter',
    (bits, bytesPerParam) => {
      const deltas = tensors(MODEL_LENGTHS, 5);
      const params = MODEL_LENGTHS.reduce((a, b) => a + b, 0);
      expect(params).toBe(199_210);
      const bytes = encodeUpdate(deltas, { bits, clipSigma: 6, rng: createRng(5) });
      expect(bytes.length / params).toBeLessThanOrEqual(bytesPerParam);
      expect(bytes.length).toBeGreaterThanOrEqual((params * bits) / 8);
    },
  );

  it('decodes from a view at a non-zero byte offset', () => {
    const deltas = tensors(lengths, 6);
    const bytes = encodeUpdate(deltas, { bits: 32, clipSigma: 3, rng: createRng(1) });
    const buffer = new Uint8Array(bytes.length + 3);
    buffer.set(bytes, 3);
    expect(decodeUpdate(buffer.subarray(3), lengths, 32)).toEqual(deltas);
  });

  it('refuses to encode non-finite deltas', () => {
    expectCode(() => encodeUpdate([new Float32Array([1, NaN])], { bits: 32, clipSigma: 3, rng: createRng(1) }), 'UPDATE_NOT_FINITE');
    expectCode(() => encodeUpdate([new Float32Array([1, Infinity])], { bits: 8, clipSigma: 3, rng: createRng(1) }), 'UPDATE_NOT_FINITE');
  });
});

describe('decodeUpdate on hostile bytes', () => {
  const lengths = [10, 3];
  const valid8 = encodeUpdate(tensors(lengths, 7), { bits: 8, clipSigma: 3, rng: createRng(7) });
  const valid32 = encodeUpdate(tensors(lengths, 7), { bits: 32, clipSigma: 3, rng: createRng(7) });
  const edit = (bytes: Uint8Array, change: (view: DataView) => void): Uint8Array => {
    const copy = bytes.slice();
    change(new DataView(copy.buffer));
    return copy;
  };

  it('accepts the unmodified payloads', () => {
    expect(decodeUpdate(valid8, lengths, 8)).toHaveLength(2);
    expect(decodeUpdate(valid32, lengths, 32)).toHaveLength(2);
  });

  it('rejects input shorter than the header as UPDATE_MALFORMED', () => {
    expectCode(() => decodeUpdate(new Uint8Array(0), lengths, 8), 'UPDATE_MALFORMED');
    expectCode(() => decodeUpdate(valid8.subarray(0, 3), lengths, 8), 'UPDATE_MALFORMED');
  });

  it('rejects every truncation as UPDATE_MALFORMED', () => {
    for (let cut = 4; cut < valid8.length; cut++) expectCode(() => decodeUpdate(valid8.subarray(0, cut), lengths, 8), 'UPDATE_MALFORMED');
    for (let cut = 4; cut < valid32.length; cut++) expectCode(() => decodeUpdate(valid32.subarray(0, cut), lengths, 32), 'UPDATE_MALFORMED');
  });

  it('rejects trailing bytes as UPDATE_MALFORMED', () => {
    const longer = new Uint8Array(valid8.length + 1);
    longer.set(valid8);
    expectCode(() => decodeUpdate(longer, lengths, 8), 'UPDATE_MALFORMED');
  });

  it('rejects an unknown format version as UPDATE_MALFORMED', () => {
    expectCode(() => decodeUpdate(edit(valid8, (v) => v.setUint8(0, 2)), lengths, 8), 'UPDATE_MALFORMED');
  });

  it('rejects bits other than the task’s as UPDATE_WRONG_BITS', () => {
    expectCode(() => decodeUpdate(valid8, lengths, 4), 'UPDATE_WRONG_BITS');
    expectCode(() => decodeUpdate(edit(valid8, (v) => v.setUint8(1, 7)), lengths, 8), 'UPDATE_WRONG_BITS');
  });

  it('rejects a wrong tensor count as UPDATE_WRONG_LENGTH', () => {
    expectCode(() => decodeUpdate(valid8, [10], 8), 'UPDATE_WRONG_LENGTH');
    expectCode(() => decodeUpdate(edit(valid8, (v) => v.setUint16(2, 3, true)), lengths, 8), 'UPDATE_WRONG_LENGTH');
  });

  it('rejects a wrong element count as UPDATE_WRONG_LENGTH', () => {
    expectCode(() => decodeUpdate(valid8, [10, 4], 8), 'UPDATE_WRONG_LENGTH');
    expectCode(() => decodeUpdate(edit(valid8, (v) => v.setUint32(4, 11, true)), lengths, 8), 'UPDATE_WRONG_LENGTH');
  });

  it('rejects a NaN, infinite or negative clip as UPDATE_NOT_FINITE', () => {
    for (const clip of [NaN, Infinity, -Infinity, -1]) {
      expectCode(() => decodeUpdate(edit(valid8, (v) => v.setFloat32(8, clip, true)), lengths, 8), 'UPDATE_NOT_FINITE');
    }
  });

  it('rejects NaN or Infinity in a float32 payload as UPDATE_NOT_FINITE', () => {
    // Tensor 1's values start after header (4), tensor 0 (4 + 40) and tensor 1's count (4).
    expectCode(() => decodeUpdate(edit(valid32, (v) => v.setFloat32(52 + 4, Infinity, true)), lengths, 32), 'UPDATE_NOT_FINITE');
    expectCode(() => decodeUpdate(edit(valid32, (v) => v.setFloat32(8, NaN, true)), lengths, 32), 'UPDATE_NOT_FINITE');
  });

  it('rejects a huge declared length without allocating for it', () => {
    const huge = edit(valid8, (v) => v.setUint32(4, 0xffffffff, true));
    expectCode(() => decodeUpdate(huge, lengths, 8), 'UPDATE_WRONG_LENGTH');
    // Even when the caller expects that length, missing data is caught before any allocation.
    expectCode(() => decodeUpdate(huge, [0xffffffff, 3], 8), 'UPDATE_MALFORMED');
    const huge32 = edit(valid32, (v) => v.setUint32(4, 0xffffffff, true));
    expectCode(() => decodeUpdate(huge32, [0xffffffff, 3], 32), 'UPDATE_MALFORMED');
  });

  it('only ever throws TributaryError on random garbage', () => {
    const rng = createRng(21);
    for (let t = 0; t < 500; t++) {
      const bytes = new Uint8Array(Math.floor(rng.next() * 64));
      for (let i = 0; i < bytes.length; i++) bytes[i] = rng.nextUint32();
      if (bytes.length > 1) bytes[0] = 1; // get past the version check most of the time
      if (bytes.length > 2) bytes[1] = 8;
      try {
        decodeUpdate(bytes, [3, 2], 8);
      } catch (error) {
        expect(error).toBeInstanceOf(TributaryError);
      }
    }
  });
});
