import { TributaryError } from '../errors.ts';
import type { Weights } from '../ml/aggregate.ts';

/** Global weights on the wire: the tensors' float32 values back to back, little-endian. */

export function encodeWeights(weights: Weights): Uint8Array {
  const total = weights.reduce((n, w) => n + w.length, 0);
  const out = new Float32Array(total);
  let offset = 0;
  for (const w of weights) {
    out.set(w, offset);
    offset += w.length;
  }
  return new Uint8Array(out.buffer);
}

export function decodeWeights(bytes: Uint8Array, lengths: readonly number[]): Weights {
  const total = lengths.reduce((n, l) => n + l, 0);
  if (bytes.byteLength !== total * 4) {
    throw new TributaryError('MODEL_MALFORMED', `expected ${total * 4} bytes, got ${bytes.byteLength}`);
  }
  // Copy into an aligned buffer: a received view may start at any byte offset.
  const all = new Float32Array(total);
  new Uint8Array(all.buffer).set(bytes);
  for (let i = 0; i < total; i++) {
    if (!Number.isFinite(all[i]!)) throw new TributaryError('MODEL_MALFORMED', 'non-finite weight');
  }
  const out: Weights = [];
  let offset = 0;
  for (const length of lengths) {
    out.push(all.subarray(offset, offset + length));
    offset += length;
  }
  return out;
}
