import { describe, expect, it } from 'vitest';
import { decodeWeights, encodeWeights } from '../../shared/codec/model-wire.ts';
import { createRng } from '../../shared/random.ts';
import { expectCode } from '../support/expect-code.ts';

describe('model wire format', () => {
  it('writes the tensors’ float32 values back to back, little-endian', () => {
    const bytes = encodeWeights([Float32Array.of(1, -2.5), new Float32Array(0), Float32Array.of(3)]);
    // 1.0f = 0x3f800000, -2.5f = 0xc0200000, 3.0f = 0x40400000
    expect([...bytes]).toEqual([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0, 0x00, 0x00, 0x40, 0x40]);
  });

  it('round-trips weights exactly, empty tensors included', () => {
    const rng = createRng(7);
    const lengths = [5, 0, 3, 1];
    const weights = lengths.map((n) => Float32Array.from({ length: n }, () => (rng.next() - 0.5) * 1e3));
    const decoded = decodeWeights(encodeWeights(weights), lengths);
    expect(decoded).toEqual(weights);
    expect(decoded.map((t) => t.length)).toEqual(lengths);
  });

  it.each([
    ['a byte short', 11],
    ['a byte long', 13],
    ['a whole weight long', 16],
  ])('refuses a payload %s with MODEL_MALFORMED', (_label, size) => {
    expectCode(() => decodeWeights(new Uint8Array(size), [2, 1]), 'MODEL_MALFORMED');
  });

  it('splits the values by the given lengths, refusing lengths of another total with MODEL_MALFORMED', () => {
    const bytes = encodeWeights([Float32Array.of(1, 2, 3)]);
    expectCode(() => decodeWeights(bytes, [2]), 'MODEL_MALFORMED');
    expect(decodeWeights(bytes, [1, 2])).toEqual([Float32Array.of(1), Float32Array.of(2, 3)]);
  });

  it.each([NaN, Infinity, -Infinity])('refuses a non-finite weight (%s) with MODEL_MALFORMED', (bad) => {
    expectCode(() => decodeWeights(encodeWeights([Float32Array.of(0.5, bad, 2)]), [3]), 'MODEL_MALFORMED');
  });

  it('decodes a view that starts at an unaligned byte offset', () => {
    const payload = encodeWeights([Float32Array.of(0.25, -8), Float32Array.of(1e-3)]);
    const backing = new Uint8Array(payload.byteLength + 3).fill(0xaa);
    backing.set(payload, 1);
    const view = backing.subarray(1, 1 + payload.byteLength);
    expect(decodeWeights(view, [2, 1])).toEqual([Float32Array.of(0.25, -8), Float32Array.of(1e-3)]);
  });

  it('decodes into its own memory: changing the received bytes afterwards changes nothing', () => {
    const bytes = encodeWeights([Float32Array.of(1, 2)]);
    const decoded = decodeWeights(bytes, [2]);
    bytes.fill(0);
    expect(decoded).toEqual([Float32Array.of(1, 2)]);
  });
});
