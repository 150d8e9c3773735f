import type { LabelledSet } from '../data/dataset.ts';
import { TributaryError } from '../errors.ts';

/**
 * A demo data shard on the wire, for browsers that stand in for a device with its own
 * data: "TRBS", u32 count, u32 features, u8 feature encoding, u8 label encoding (little-
 * endian), then features and labels. Features that are all whole 255ths (image pixels)
 * travel as one byte each, others as float32; labels as int32 (classes, tokens) or float32
 * (regression). Nothing is lost either way.
 */
const MAGIC = [0x54, 0x52, 0x42, 0x53];
const HEADER = 16;
const BYTES = 0;
const FLOAT32 = 1;
const INT32 = 2;

function allBytes(x: Float32Array): boolean {
  for (let i = 0; i < x.length; i++) {
    const level = Math.round(x[i]! * 255);
    if (level < 0 || level > 255 || Math.fround(level / 255) !== x[i]) return false;
  }
  return true;
}

export function encodeShard(set: LabelledSet): Uint8Array {
  const bytes = allBytes(set.x);
  const xBytes = bytes ? set.x.length : set.x.length * 4;
  const out = new Uint8Array(HEADER + xBytes + set.n * 4);
  out.set(MAGIC);
  const view = new DataView(out.buffer);
  view.setUint32(4, set.n, true);
  view.setUint32(8, set.features, true);
  out[12] = bytes ? BYTES : FLOAT32;
  out[13] = set.y instanceof Float32Array ? FLOAT32 : INT32;
  if (bytes) for (let i = 0; i < set.x.length; i++) out[HEADER + i] = Math.round(set.x[i]! * 255);
  else for (let i = 0; i < set.x.length; i++) view.setFloat32(HEADER + 4 * i, set.x[i]!, true);
  const labels = HEADER + xBytes;
  for (let i = 0; i < set.n; i++) {
    if (out[13] === FLOAT32) view.setFloat32(labels + 4 * i, set.y[i]!, true);
    else view.setInt32(labels + 4 * i, set.y[i]!, true);
  }
  return out;
}

export function decodeShard(bytes: Uint8Array): LabelledSet {
  if (bytes.length < HEADER || MAGIC.some((b, i) => bytes[i] !== b)) throw new TributaryError('DATA_MALFORMED', 'not a shard');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getUint32(4, true);
  const features = view.getUint32(8, true);
  const xKind = bytes[12];
  const yKind = bytes[13];
  const xBytes = xKind === BYTES ? n * features : n * features * 4;
  if ((xKind !== BYTES && xKind !== FLOAT32) || (yKind !== FLOAT32 && yKind !== INT32) || bytes.length !== HEADER + xBytes + 4 * n) {
    throw new TributaryError('DATA_MALFORMED', `${bytes.length} bytes for ${n} samples of ${features}`);
  }
  const x = new Float32Array(n * features);
  if (xKind === BYTES) for (let i = 0; i < x.length; i++) x[i] = bytes[HEADER + i]! / 255;
  else for (let i = 0; i < x.length; i++) x[i] = view.getFloat32(HEADER + 4 * i, true);
  const y = yKind === FLOAT32 ? new Float32Array(n) : new Int32Array(n);
  for (let i = 0; i < n; i++) y[i] = yKind === FLOAT32 ? view.getFloat32(HEADER + xBytes + 4 * i, true) : view.getInt32(HEADER + xBytes + 4 * i, true);
  return { x, y, n, features };
}
