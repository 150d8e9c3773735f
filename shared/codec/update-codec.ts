import { packBitsInto, packedByteLength, unpackBits } from './bitpack.ts';
import { TributaryError } from '../errors.ts';
import { chooseClip, dequantize, quantize, quantizeWithFeedback } from './quantize.ts';
import type { Rng } from '../random.ts';
import type { UpdateBits } from '../protocol/task.ts';

/**
 * Wire format of one client update, all little-endian:
 *
 *   u8 version (1) · u8 bits · u16 tensor count
 *   per tensor: u32 element count · f32 clip (absent when bits = 32) · data
 *
 * data is the levels packed at `bits` each (bits < 32) or raw float32s (bits = 32),
 * ending on a byte boundary. Header cost is 4 + 8 bytes per tensor, so an 8-bit update
 * is ~1 byte per parameter.
 */

export interface EncodeOptions {
  bits: UpdateBits;
  /** Clip each tensor at this many RMS (Infinity: never clip). Ignored at 32 bits. */
  clipSigma: number;
  rng: Rng;
  /** Error-feedback residual, one per tensor, updated in place. Ignored at 32 bits. */
  residual?: Float32Array[];
}

const FORMAT_VERSION = 1;
const UPDATE_HEADER_BYTES = 4;
const MAX_TENSORS = 0xffff;

function isUpdateBits(bits: number): bits is UpdateBits {
  return bits === 2 || bits === 4 || bits === 8 || bits === 16 || bits === 32;
}

function tensorHeaderBytes(bits: UpdateBits): number {
  return bits === 32 ? 4 : 8;
}

function dataBytes(count: number, bits: UpdateBits): number {
  return bits === 32 ? count * 4 : packedByteLength(count, bits);
}

export function encodeUpdate(deltas: Float32Array[], options: EncodeOptions): Uint8Array {
  const { bits, clipSigma, rng, residual } = options;
  if (!isUpdateBits(bits)) throw new TributaryError('UPDATE_WRONG_BITS', `cannot encode at ${bits} bits`);
  if (deltas.length > MAX_TENSORS) {
    throw new TributaryError('UPDATE_WRONG_LENGTH', `${deltas.length} tensors; the format allows ${MAX_TENSORS}`);
  }
  const useResidual = residual !== undefined && bits !== 32;
  if (useResidual) {
    if (residual.length !== deltas.length) {
      throw new TributaryError('UPDATE_WRONG_LENGTH', `${residual.length} residuals for ${deltas.length} tensors`);
    }
  }

  // The size depends only on the shapes, so the output is allocated once and packed in place.
  let size = UPDATE_HEADER_BYTES;
  for (const d of deltas) size += tensorHeaderBytes(bits) + dataBytes(d.length, bits);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint8(0, FORMAT_VERSION);
  view.setUint8(1, bits);
  view.setUint16(2, deltas.length, true);

  let offset = UPDATE_HEADER_BYTES;
  for (let t = 0; t < deltas.length; t++) {
    const delta = deltas[t]!;
    view.setUint32(offset, delta.length, true);
    offset += 4;
    if (bits === 32) {
      for (let i = 0; i < delta.length; i++, offset += 4) {
        const v = delta[i]!;
        // Fail on the client: the server would reject the update anyway.
        if (!Number.isFinite(v)) throw new TributaryError('UPDATE_NOT_FINITE', `tensor ${t} index ${i}`);
        view.setFloat32(offset, v, true);
      }
      continue;
    }
    const q = useResidual
      ? quantizeWithFeedback(delta, residual[t]!, bits, clipSigma, rng)
      : quantize(delta, bits, chooseClip(delta, clipSigma), rng);
    view.setFloat32(offset, q.clip, true); // chooseClip already rounded it to float32
    offset += 4;
    offset += packBitsInto(q.levels, bits, out, offset);
  }
  return out;
}

/** Where one tensor of a validated update lies in its bytes. */
export interface TensorLayout {
  /** Element count (equal to the model's length for this tensor). */
  count: number;
  /** Half-width of the quantization range; 0 at 32 bits, where there is none. */
  clip: number;
  /** Byte offset of the tensor's data (packed levels or float32s) within the update. */
  offset: number;
}

export interface UpdateLayout {
  bits: UpdateBits;
  tensors: TensorLayout[];
}

/**
 * Validates an update against the model's tensor lengths without decoding its values:
 * header, counts, clips, sizes and (at 32 bits) that every float is finite, in the order
 * decodeUpdate reports them. Once it returns, every tensor's data is present and reading
 * it cannot fail (levels are masked to `bits`), so a consumer may fold the values
 * straight into a sum with no partial-update risk. Hostile input only ever produces a
 * TributaryError, and nothing larger than one small record per tensor is allocated.
 */
export function parseUpdate(
  bytes: Uint8Array,
  expectedLengths: readonly number[],
  expectedBits: UpdateBits,
): UpdateLayout {
  if (!isUpdateBits(expectedBits)) {
    throw new TributaryError('INTERNAL', `no update format for ${expectedBits} bits`);
  }
  if (bytes.length < UPDATE_HEADER_BYTES) {
    throw new TributaryError('UPDATE_MALFORMED', `${bytes.length} bytes is shorter than the header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint8(0);
  if (version !== FORMAT_VERSION) throw new TributaryError('UPDATE_MALFORMED', `unknown format version ${version}`);
  const bits = view.getUint8(1);
  if (bits !== expectedBits) {
    throw new TributaryError('UPDATE_WRONG_BITS', `update has ${bits} bits, the task uses ${expectedBits}`);
  }
  const tensorCount = view.getUint16(2, true);
  if (tensorCount !== expectedLengths.length) {
    throw new TributaryError('UPDATE_WRONG_LENGTH', `${tensorCount} tensors, the model has ${expectedLengths.length}`);
  }

  const total = bytes.length;
  const headerBytes = tensorHeaderBytes(bits);
  const tensors: TensorLayout[] = [];
  let offset = UPDATE_HEADER_BYTES;
  for (let t = 0; t < tensorCount; t++) {
    if (offset + headerBytes > total) throw new TributaryError('UPDATE_MALFORMED', `truncated at tensor ${t}`);
    const count = view.getUint32(offset, true);
    offset += 4;
    if (count !== expectedLengths[t]) {
      throw new TributaryError('UPDATE_WRONG_LENGTH', `tensor ${t} has ${count} values, the model ${expectedLengths[t]}`);
    }
    const length = dataBytes(count, bits);
    let clip = 0;
    if (bits === 32) {
      if (offset + length > total) throw new TributaryError('UPDATE_MALFORMED', `tensor ${t} data truncated`);
      for (let i = 0, o = offset; i < count; i++, o += 4) {
        const v = view.getFloat32(o, true);
        if (!Number.isFinite(v)) throw new TributaryError('UPDATE_NOT_FINITE', `tensor ${t} index ${i}`);
      }
    } else {
      clip = view.getFloat32(offset, true);
      offset += 4;
      if (!Number.isFinite(clip) || clip < 0) {
        throw new TributaryError('UPDATE_NOT_FINITE', `tensor ${t} clip is ${clip}`);
      }
      if (offset + length > total) throw new TributaryError('UPDATE_MALFORMED', `tensor ${t} data truncated`);
    }
    tensors.push({ count, clip, offset });
    offset += length;
  }
  if (offset !== total) throw new TributaryError('UPDATE_MALFORMED', `${total - offset} trailing bytes`);
  return { bits, tensors };
}

/**
 * Decodes and validates an update against the model's tensor lengths. Hostile input
 * only ever produces a TributaryError; no allocation exceeds what `expectedLengths` allow,
 * and none happens before the whole update has been validated (parseUpdate).
 */
export function decodeUpdate(
  bytes: Uint8Array,
  expectedLengths: readonly number[],
  expectedBits: UpdateBits,
): Float32Array[] {
  const { bits, tensors } = parseUpdate(bytes, expectedLengths, expectedBits);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return tensors.map(({ count, clip, offset }) => {
    if (bits === 32) {
      const values = new Float32Array(count);
      for (let i = 0, o = offset; i < count; i++, o += 4) values[i] = view.getFloat32(o, true);
      return values;
    }
    // unpackBits masks to `bits`, so every level is in range whatever the bytes hold.
    const levels = unpackBits(bytes.subarray(offset, offset + dataBytes(count, bits)), bits, count);
    return dequantize({ bits, clip, levels });
  });
}
