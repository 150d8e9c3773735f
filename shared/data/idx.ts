import { TributaryError } from '../errors.ts';

/**
 * IDX, the MNIST file format: bytes 0–1 zero, byte 2 the element type, byte 3 the number
 * of dimensions, then each dimension as a big-endian u32, then the data row-major.
 */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const DTYPE_UBYTE = 0x08;

/** Only unsigned-byte files (all MNIST-family data) are supported. `data` views `bytes`. */
export function parseIdx(bytes: Uint8Array): IdxArray {
  if (bytes.length < 4) throw new TributaryError('DATA_MALFORMED', `${bytes.length} bytes is shorter than the header`);
  if (bytes[0] !== 0 || bytes[1] !== 0) throw new TributaryError('DATA_MALFORMED', 'bad magic number');
  const dtype = bytes[2]!;
  if (dtype !== DTYPE_UBYTE) {
    throw new TributaryError('DATA_MALFORMED', `element type 0x${dtype.toString(16).padStart(2, '0')} is not unsigned byte`);
  }
  const ndims = bytes[3]!;
  if (ndims < 1 || ndims > 4) throw new TributaryError('DATA_MALFORMED', `${ndims} dimensions (1..4 supported)`);
  const headerLength = 4 + 4 * ndims;
  if (bytes.length < headerLength) throw new TributaryError('DATA_MALFORMED', 'header truncated');

  const dims: number[] = [];
  let size = 1; // a double: a hostile product beyond 2^53 is inexact but cannot equal a real length
  for (let d = 0; d < ndims; d++) {
    const o = 4 + 4 * d;
    const dim = ((bytes[o]! << 24) | (bytes[o + 1]! << 16) | (bytes[o + 2]! << 8) | bytes[o + 3]!) >>> 0;
    dims.push(dim);
    size *= dim;
  }
  const dataLength = bytes.length - headerLength;
  if (size !== dataLength) {
    throw new TributaryError('DATA_MALFORMED', `dimensions ${dims.join('×')} need ${size} bytes of data, found ${dataLength}`);
  }
  return { dims, data: bytes.subarray(headerLength) };
}
