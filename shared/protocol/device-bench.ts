/** What the device benchmark page (web/src/bench.ts) measures, and `npm run bench -- browser` reads. */

export const BENCH_BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;
export type BenchBackend = (typeof BENCH_BACKENDS)[number];

export interface Measurement {
  /** Which model was timed, e.g. mlp or cnn (web/src/bench.ts names them). */
  preset: string;
  backend: BenchBackend;
  status: 'ok' | 'n/a' | 'unavailable' | 'failed';
  /** Why there is no number (status other than ok). */
  reason?: string;
  /** Median over the timed passes of one step's share of the pass. */
  stepMs?: number;
  /** The first step on a fresh model: shader compilation, uploads and the read-back included. */
  firstStepMs?: number;
  samplesPerSecond?: number;
  /** Timed passes (of STEPS_PER_PASS steps each). */
  passes?: number;
}

export interface BenchResults {
  userAgent: string;
  hardwareConcurrency: number;
  crossOriginIsolated: boolean;
  webgpuAdapter?: string;
  webglRenderer?: string;
  /** Backends whose adapter or renderer is a software one (SwiftShader and the like). */
  softwareRendered: BenchBackend[];
  wasm?: { simd: boolean; multithread: boolean; threads: number };
  batchSize: number;
  stepsPerPass: number;
  measurements: Measurement[];
  durationMs: number;
}
