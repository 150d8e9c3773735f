import type { LabelledSet } from '../data/dataset.ts';
import { TributaryError } from '../errors.ts';

/**
 * A demo data shard on the wire, for browsers that stand in for a device with its own
 * data: "TRBS", u32 count, u32 features (little-endian), then the pixels as bytes
 * (value × 255) and one label byte per sample. Fashion-MNIST pixels are bytes to begin
 * with, so nothing is lost.
 */
const MAGIC = [0x54, 0x52, 0x42, 0x53];
const HEADER = 12;

export function encodeShard(set: LabelledSet): Uint8Array {
  const out = new Uint8Array(HEADER + set.n * set.features + set.n);
  out.set(MAGIC);
  const view = new DataView(out.buffer);
  view.setUint32(4, set.n, true);
  view.setUint32(8, set.features, true);
  for (let i = 0; i < set.x.length; i++) out[HEADER + i] = Math.round(set.x[i]! * 255);
  for (let i = 0; i < set.n; i++) out[HEADER + set.x.length + i] = set.y[i]!;
  return out;
}

export function decodeShard(bytes: Uint8Array): LabelledSet {
  if (bytes.length < HEADER || MAGIC.some((b, i) => bytes[i] !== b)) throw new TributaryError('DATA_MALFORMED', 'not a shard');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getUint32(4, true);
  const features = view.getUint32(8, true);
  if (bytes.length !== HEADER + n * features + n) throw new TributaryError('DATA_MALFORMED', `${bytes.length} bytes for ${n} samples of ${features}`);
  const x = new Float32Array(n * features);
  for (let i = 0; i < x.length; i++) x[i] = bytes[HEADER + i]! / 255;
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) y[i] = bytes[HEADER + x.length + i]!;
  return { x, y, n, features };
}
