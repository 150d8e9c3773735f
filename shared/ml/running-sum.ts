import { quantizationStep } from '../codec/quantize.ts';
import { parseUpdate, type TensorLayout } from '../codec/update-codec.ts';
import { TributaryError } from '../errors.ts';
import type { UpdateBits } from '../protocol/task.ts';
import type { Weights } from './aggregate.ts';

/**
 * Σ wᵢΔᵢ and Σ wᵢ over a round's updates, folded in as they arrive: O(m) memory for a
 * model of m parameters, however many clients report. The sum is float64, as in
 * weightedMean, and each element sees the same additions in the same order, so folding
 * updates one by one and taking the mean reproduces weightedMean of the same updates
 * bit for bit. `addEncoded` folds the wire encoding without decoding it to float32
 * arrays, yet adds exactly what decodeUpdate would have produced.
 *
 * Partial sums (one per process) combine with `merge` and travel as `toBytes`:
 *
 *   u8 version (1) · u8 0 · u16 tensor count · u32 update count · f64 weight ·
 *   u32 length per tensor · zero padding to a multiple of 8 · f64 per parameter
 *
 * all little-endian.
 */

const PARTIAL_VERSION = 1;
const PARTIAL_FIXED_BYTES = 16;
const MAX_TENSORS = 0xffff;
const MAX_COUNT = 0xffffffff;

function checkWeight(weight: number): void {
  if (!Number.isFinite(weight) || weight < 0) {
    throw new TributaryError('BAD_REQUEST', `update weight ${weight} is not a non-negative number`);
  }
}

function partialHeaderBytes(tensors: number): number {
  return Math.ceil((PARTIAL_FIXED_BYTES + 4 * tensors) / 8) * 8;
}

export class RunningSum {
  readonly lengths: readonly number[];
  /** Σ wᵢΔᵢ, all tensors end to end; tensor t starts at starts[t]. */
  private readonly sum: Float64Array;
  private readonly starts: readonly number[];
  /** w · (the float32 that level q decodes to), rebuilt per tensor by the ≤ 8-bit folds. */
  private readonly levelValues = new Float64Array(256);
  private totalWeight = 0;
  private updates = 0;

  constructor(lengths: readonly number[]) {
    if (lengths.length > MAX_TENSORS) {
      throw new TributaryError('INTERNAL', `${lengths.length} tensors; a model has at most ${MAX_TENSORS}`);
    }
    const starts: number[] = [];
    let total = 0;
    for (const n of lengths) {
      if (!Number.isInteger(n) || n < 0 || n > MAX_COUNT) {
        throw new TributaryError('INTERNAL', `tensor length must be a non-negative 32-bit integer, got ${n}`);
      }
      starts.push(total);
      total += n;
    }
    this.lengths = [...lengths];
    this.starts = starts;
    this.sum = new Float64Array(total);
  }

  /** Σ wᵢ. */
  get weight(): number {
    return this.totalWeight;
  }

  /** How many updates (or, through merge, partials' updates) were folded in. */
  get count(): number {
    return this.updates;
  }

  /** Folds w · Δ in. Validates the whole update before touching the sum. */
  add(delta: Weights, weight: number): void {
    this.checkAccepts(weight);
    if (delta.length !== this.lengths.length) {
      throw new TributaryError('BAD_REQUEST', `update has ${delta.length} tensors, the sum ${this.lengths.length}`);
    }
    for (let t = 0; t < delta.length; t++) {
      if (delta[t]!.length !== this.lengths[t]) {
        throw new TributaryError('BAD_REQUEST', `tensor ${t} has ${delta[t]!.length} values, the sum ${this.lengths[t]}`);
      }
    }
    if (weight > 0) {
      for (let t = 0; t < delta.length; t++) {
        const d = delta[t]!;
        const s = this.tensorSum(t);
        for (let i = 0; i < d.length; i++) s[i] = s[i]! + weight * d[i]!;
      }
    }
    this.record(weight);
  }

  /**
   * Folds w · decodeUpdate(bytes, lengths, bits) in without materialising the decoded
   * arrays. Rejects exactly what decodeUpdate rejects, with the same codes, before any
   * of the sum changes.
   */
  addEncoded(bytes: Uint8Array, bits: UpdateBits, weight: number): void {
    this.checkAccepts(weight);
    const layout = parseUpdate(bytes, this.lengths, bits);
    if (weight > 0) {
      for (let t = 0; t < layout.tensors.length; t++) this.foldTensor(bytes, layout.tensors[t]!, bits, weight, this.tensorSum(t));
    }
    this.record(weight);
  }

  /** Adds another partial sum over the same tensor lengths (which is left unchanged). */
  merge(other: RunningSum): void {
    if (other.lengths.length !== this.lengths.length || other.lengths.some((n, t) => n !== this.lengths[t])) {
      throw new TributaryError('BAD_REQUEST', `cannot merge sums over [${other.lengths.join(', ')}] into [${this.lengths.join(', ')}]`);
    }
    if (this.updates + other.updates > MAX_COUNT) throw new TributaryError('BAD_REQUEST', 'too many updates in one sum');
    const s = this.sum;
    const o = other.sum;
    for (let i = 0; i < s.length; i++) s[i] = s[i]! + o[i]!;
    this.totalWeight += other.totalWeight;
    this.updates += other.updates;
  }

  /** Σ wᵢΔᵢ / Σ wᵢ as float32 tensors. */
  mean(): Weights {
    const total = this.totalWeight;
    if (!(total > 0) || !Number.isFinite(total)) {
      throw new TributaryError('BAD_REQUEST', `total weight ${total} is not positive and finite`);
    }
    return this.lengths.map((n, t) => {
      const s = this.tensorSum(t);
      const mean = new Float32Array(n);
      for (let i = 0; i < n; i++) mean[i] = s[i]! / total;
      return mean;
    });
  }

  toBytes(): Uint8Array {
    const header = partialHeaderBytes(this.lengths.length);
    const out = new Uint8Array(header + 8 * this.sum.length);
    const view = new DataView(out.buffer);
    view.setUint8(0, PARTIAL_VERSION);
    view.setUint16(2, this.lengths.length, true);
    view.setUint32(4, this.updates, true);
    view.setFloat64(8, this.totalWeight, true);
    this.lengths.forEach((n, t) => view.setUint32(PARTIAL_FIXED_BYTES + 4 * t, n, true));
    const s = this.sum;
    for (let i = 0, o = header; i < s.length; i++, o += 8) view.setFloat64(o, s[i]!, true);
    return out;
  }

  /**
   * Reads a partial written by toBytes, for a model of `lengths`. Anything else (other
   * shape, wrong size, negative or non-finite weight, non-finite sums, a sum without
   * weight) is a BAD_REQUEST; nothing is allocated before the size is known to match.
   */
  static fromBytes(bytes: Uint8Array, lengths: readonly number[]): RunningSum {
    const bad = (why: string) => new TributaryError('BAD_REQUEST', `partial sum: ${why}`);
    if (bytes.length < PARTIAL_FIXED_BYTES) throw bad(`${bytes.length} bytes is shorter than the header`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const version = view.getUint8(0);
    if (version !== PARTIAL_VERSION || view.getUint8(1) !== 0) throw bad(`unknown format version ${version}`);
    const tensorCount = view.getUint16(2, true);
    if (tensorCount !== lengths.length) throw bad(`${tensorCount} tensors, the model has ${lengths.length}`);
    const header = partialHeaderBytes(tensorCount);
    let total = 0;
    for (const n of lengths) total += n;
    if (bytes.length !== header + 8 * total) throw bad(`${bytes.length} bytes; the model needs ${header + 8 * total}`);
    for (let t = 0; t < tensorCount; t++) {
      const n = view.getUint32(PARTIAL_FIXED_BYTES + 4 * t, true);
      if (n !== lengths[t]) throw bad(`tensor ${t} has ${n} values, the model ${lengths[t]}`);
    }
    for (let o = PARTIAL_FIXED_BYTES + 4 * tensorCount; o < header; o++) {
      if (view.getUint8(o) !== 0) throw bad('non-zero padding');
    }
    const updates = view.getUint32(4, true);
    const weight = view.getFloat64(8, true);
    if (!Number.isFinite(weight) || weight < 0) throw bad(`weight ${weight} is not a non-negative number`);

    const partial = new RunningSum(lengths);
    const s = partial.sum;
    let nonZero = false;
    for (let i = 0, o = header; i < total; i++, o += 8) {
      const v = view.getFloat64(o, true);
      if (!Number.isFinite(v)) throw bad(`value ${i} is ${v}`);
      if (v !== 0) nonZero = true;
      s[i] = v;
    }
    if (weight === 0 && nonZero) throw bad('a sum with no weight must be zero');
    partial.totalWeight = weight;
    partial.updates = updates;
    return partial;
  }

  private tensorSum(t: number): Float64Array {
    const start = this.starts[t]!;
    return this.sum.subarray(start, start + this.lengths[t]!);
  }

  private checkAccepts(weight: number): void {
    checkWeight(weight);
    if (this.updates === MAX_COUNT) throw new TributaryError('BAD_REQUEST', 'too many updates in one sum');
  }

  private record(weight: number): void {
    this.totalWeight += weight;
    this.updates++;
  }

  /**
   * s += w · decoded tensor. Each level's decoded value is Math.fround(−clip + q · step),
   * the float32 dequantize stores; w times it, rounded once to float64, is the term
   * `add` would fold, so both paths agree bit for bit.
   */
  private foldTensor(bytes: Uint8Array, tensor: TensorLayout, bits: UpdateBits, w: number, s: Float64Array): void {
    const { count, clip, offset } = tensor;
    if (bits === 32) {
      const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 4 * count);
      for (let i = 0; i < count; i++) s[i] = s[i]! + w * view.getFloat32(4 * i, true);
      return;
    }
    // A zero clip decodes to zeros, and adding +0 changes no sum (which is never −0).
    if (clip === 0) return;
    const lo = -clip;
    const step = quantizationStep(bits, clip);
    if (bits === 16) {
      const q = bytes.subarray(offset, offset + 2 * count);
      for (let i = 0, j = 0; i < count; i++, j += 2) {
        s[i] = s[i]! + w * Math.fround(lo + (q[j]! | (q[j + 1]! << 8)) * step);
      }
      return;
    }
    const values = this.levelValues;
    const levels = 2 ** bits;
    for (let q = 0; q < levels; q++) values[q] = w * Math.fround(lo + q * step);
    if (bits === 8) foldBytes(s, bytes.subarray(offset, offset + count), values);
    else foldPacked(s, bytes.subarray(offset, offset + Math.ceil((count * bits) / 8)), values, bits, count);
  }
}

/**
 * The 8-bit kernel: s[i] += values[q[i]]. A 256-entry table is as fast as a·q + c (the
 * loop is bound by the sum's loads and stores, not arithmetic) and, unlike it, exact.
 * Unrolled by 8: V8 keeps a bounds check on every access, and unrolling lets the CPU
 * overlap eight independent chains of them (~1.6× the plain loop, measured).
 */
function foldBytes(s: Float64Array, q: Uint8Array, values: Float64Array): void {
  const n = q.length;
  let i = 0;
  for (const end = n - 7; i < end; i += 8) {
    s[i] = s[i]! + values[q[i]!]!;
    s[i + 1] = s[i + 1]! + values[q[i + 1]!]!;
    s[i + 2] = s[i + 2]! + values[q[i + 2]!]!;
    s[i + 3] = s[i + 3]! + values[q[i + 3]!]!;
    s[i + 4] = s[i + 4]! + values[q[i + 4]!]!;
    s[i + 5] = s[i + 5]! + values[q[i + 5]!]!;
    s[i + 6] = s[i + 6]! + values[q[i + 6]!]!;
    s[i + 7] = s[i + 7]! + values[q[i + 7]!]!;
  }
  for (; i < n; i++) s[i] = s[i]! + values[q[i]!]!;
}

/** 2- and 4-bit levels, low bits first within each byte (bitpack.ts's layout). */
function foldPacked(s: Float64Array, packed: Uint8Array, values: Float64Array, bits: 2 | 4, count: number): void {
  const perByte = 8 / bits;
  const mask = (1 << bits) - 1;
  const whole = Math.floor(count / perByte);
  let i = 0;
  for (let b = 0; b < whole; b++) {
    let byte = packed[b]!;
    for (let k = 0; k < perByte; k++, i++, byte >>>= bits) s[i] = s[i]! + values[byte & mask]!;
  }
  if (i < count) {
    let byte = packed[whole]!;
    for (; i < count; i++, byte >>>= bits) s[i] = s[i]! + values[byte & mask]!;
  }
}
