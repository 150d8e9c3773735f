import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { decodeUpdate, encodeUpdate } from '../shared/codec/update-codec.ts';
import { weightedMean, type Weights } from '../shared/ml/aggregate.ts';
import { RunningSum } from '../shared/ml/running-sum.ts';
import { createRng } from '../shared/random.ts';
import type { BenchOptions } from './options.ts';
import { table } from './report.ts';

/**
 * The streaming aggregation kernel: n real 8-bit encodings (encodeUpdate of seeded
 * deltas) folded into one RunningSum with addEncoded, against memcpy in the same run,
 * and against the old path (decodeUpdate every update, then weightedMean over all n).
 *
 * Traffic is bytes read plus bytes written, for all: the fold reads the encoded update
 * and reads and writes the float64 sum (8 + 8 bytes a parameter an update). Per update,
 * each memcpy copies the encoded update into a scratch buffer and moves 8 bytes a
 * parameter of float64s, either from one sum-sized array into another (a copy of that
 * many bytes: twice the fold's working set, so it spills a 2 MiB L2) or within one
 * sum-sized array (copyWithin of each half onto the other: the fold's own footprint,
 * cache level for cache level). Sources are written before they are read: a
 * never-touched array maps the kernel's zero page and copies twice as fast as real
 * memory. Timings alternate A B C C B A; each figure is the median over the repetitions.
 */

export interface AggregationKernelSettings {
  lengths: readonly number[];
  updates: number;
  /** A B B A blocks; each gives two timings of each. */
  repetitions: number;
  oldRepetitions: number;
  clipSigma: number;
  target: number;
}

export function defaultSettings(): AggregationKernelSettings {
  return {
    lengths: [156_800, 200, 40_000, 200, 2000, 10], // the MLP, 199,210 parameters
    updates: 200,
    repetitions: 7,
    oldRepetitions: 3,
    clipSigma: 6, // the task default
    target: 0.5,
  };
}

export async function run(options: BenchOptions): Promise<void> {
  await runAggregationKernel(options, defaultSettings());
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function timeMs(fn: () => unknown): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Node's gc(), without needing --expose-gc on the command line. */
function gcFunction(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/**
 * Peak ArrayBuffer bytes above the level before `fn`, sampled each time `fn` calls
 * `sample`. V8 frees array buffers' memory on a concurrent sweeper, so the level is read
 * only once a full GC has had time to finish freeing.
 */
async function peakBytes(gc: () => void, fn: (sample: () => void) => void): Promise<number> {
  const settled = async () => {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 100));
    gc();
    return process.memoryUsage().arrayBuffers;
  };
  const base = await settled();
  let peak = 0;
  fn(() => {
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
  });
  await settled();
  return peak;
}

export async function runAggregationKernel(options: BenchOptions, settings: AggregationKernelSettings): Promise<void> {
  const { lengths, updates: n } = settings;
  const m = lengths.reduce((a, b) => a + b, 0);
  process.stderr.write(`encoding ${n} 8-bit updates of ${m.toLocaleString('en')} parameters…\n`);
  const rng = createRng(1);
  const encoded: Uint8Array[] = [];
  for (let k = 0; k < n; k++) {
    const scale = 0.001 * (1 + (k % 7));
    const delta = lengths.map((len) => Float32Array.from({ length: len }, () => (rng.next() * 2 - 1) * scale));
    encoded.push(encodeUpdate(delta, { bits: 8, clipSigma: settings.clipSigma, rng }));
  }
  const weights = encoded.map((_, k) => 50 + (k % 13));
  const inputBytes = encoded.reduce((s, e) => s + e.length, 0);

  const fold = (sample?: () => void): RunningSum => {
    const sum = new RunningSum(lengths);
    for (let k = 0; k < n; k++) {
      sum.addEncoded(encoded[k]!, 8, weights[k]!);
      sample?.();
    }
    return sum;
  };
  const scratch = new Uint8Array(Math.max(...encoded.map((e) => e.length)));
  const sumSource = new Float64Array(m).fill(1);
  const sumCopy = new Float64Array(m);
  const memcpy = (): void => {
    for (let k = 0; k < n; k++) {
      scratch.set(encoded[k]!);
      sumCopy.set(sumSource);
    }
  };
  const half = m >> 1;
  const memcpyInPlace = (): void => {
    for (let k = 0; k < n; k++) {
      scratch.set(encoded[k]!);
      sumSource.copyWithin(0, half, 2 * half);
      sumSource.copyWithin(half, 0, half);
    }
  };
  const oldPath = (sample?: () => void): Weights => {
    const decoded: Weights[] = [];
    for (let k = 0; k < n; k++) {
      decoded.push(decodeUpdate(encoded[k]!, lengths, 8));
      sample?.();
    }
    const mean = weightedMean(decoded.map((delta, k) => ({ delta, weight: weights[k]! })));
    sample?.();
    return mean;
  };

  // Warm up both kernels (and check the streamed mean is the old one, bit for bit).
  const identical = JSON.stringify(fold().mean().map((t) => Array.from(t))) === JSON.stringify(oldPath().map((t) => Array.from(t)));
  memcpy();
  memcpyInPlace();
  fold();

  process.stderr.write(`timing: ${settings.repetitions} × (fold, memcpy, memcpy in place, memcpy in place, memcpy, fold)…\n`);
  const foldMs: number[] = [];
  const memcpyMs: number[] = [];
  const inPlaceMs: number[] = [];
  for (let r = 0; r < settings.repetitions; r++) {
    foldMs.push(timeMs(fold));
    memcpyMs.push(timeMs(memcpy));
    inPlaceMs.push(timeMs(memcpyInPlace));
    inPlaceMs.push(timeMs(memcpyInPlace));
    memcpyMs.push(timeMs(memcpy));
    foldMs.push(timeMs(fold));
  }
  process.stderr.write(`timing the old path: ${settings.oldRepetitions} × decodeUpdate ×${n} + weightedMean…\n`);
  const oldMs: number[] = [];
  for (let r = 0; r < settings.oldRepetitions; r++) oldMs.push(timeMs(oldPath));

  const gc = gcFunction();
  const foldPeak = await peakBytes(gc, (sample) => fold(sample).mean());
  const oldPeak = await peakBytes(gc, (sample) => oldPath(sample));

  const foldTraffic = inputBytes + 16 * m * n;
  const memcpyTraffic = 2 * inputBytes + 16 * m * n;
  const fold50 = median(foldMs);
  const memcpy50 = median(memcpyMs);
  const inPlace50 = median(inPlaceMs);
  const old50 = median(oldMs);
  const gbps = (bytes: number, ms: number) => bytes / ms / 1e6;
  const foldRate = gbps(foldTraffic, fold50);
  const references = [
    { name: 'memcpy in place (the fold\'s footprint)', ms: inPlace50 },
    { name: 'memcpy src → dst (2× footprint)', ms: memcpy50 },
  ].map((r) => ({ ...r, rate: gbps(memcpyTraffic, r.ms), ratio: foldRate / gbps(memcpyTraffic, r.ms) }));
  const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
  const rows = [
    ['fold: RunningSum.addEncoded', fold50.toFixed(1), foldRate.toFixed(2), gbps(inputBytes, fold50).toFixed(2), mb(foldPeak)],
    ...references.map((r) => [r.name, r.ms.toFixed(1), r.rate.toFixed(2), '', '']),
    ['old: decodeUpdate + weightedMean', old50.toFixed(1), '', gbps(inputBytes, old50).toFixed(2), mb(oldPeak)],
  ];
  const lines = [
    `Aggregation kernel: ${n} 8-bit updates of ${m.toLocaleString('en')} parameters (${mb(inputBytes)} MB encoded) into one float64 sum of ${mb(8 * m)} MB.`,
    `Traffic = bytes read + written: fold ${mb(foldTraffic)} MB (encoded + 16 B a parameter an update), memcpy ${mb(memcpyTraffic)} MB. ` +
      `Medians of ${2 * settings.repetitions} runs each, interleaved; old path ${settings.oldRepetitions} runs. Peak: ArrayBuffer bytes above the inputs.`,
    '',
    table(['path', 'ms', 'traffic GB/s', 'input GB/s', 'peak MB'], rows),
    '',
    table(
      ['reference', 'fold GB/s', 'memcpy GB/s', 'ratio', `target ≥ ${settings.target * 100} %`],
      references.map((r) => [r.name, foldRate.toFixed(2), r.rate.toFixed(2), `${(r.ratio * 100).toFixed(1)} %`, r.ratio >= settings.target ? 'met' : 'MISSED']),
    ),
    '',
    `vs the old path: ${(old50 / fold50).toFixed(1)}× faster, peak memory ${mb(oldPeak)} MB → ${mb(foldPeak)} MB; streamed mean ${identical ? 'equals weightedMean bit for bit' : 'DIFFERS from weightedMean'}.`,
  ];
  console.log(`\n${lines.join('\n')}`);
  await mkdir(options.out, { recursive: true });
  const json = join(options.out, 'aggregation-kernel.json');
  await writeFile(json, JSON.stringify({ settings, parameters: m, inputBytes, foldMs, memcpyMs, inPlaceMs, oldMs, foldPeak, oldPeak, references, identical }, null, 2));
  console.log(`\nraw results: ${json}`);
}
