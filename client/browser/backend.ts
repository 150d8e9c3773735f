import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { Weights } from '../../shared/ml/aggregate.ts';
import { trainsOnWasm } from '../../shared/ml/models.ts';
import type { TaskModel } from '../../shared/protocol/task.ts';
import { preferredBackends } from '../backend.ts';
import { measureThroughput, probeStep } from '../probe.ts';

/** What the browser trains on, and why. */
export interface BackendChoice {
  name: string;
  /** Samples per second over a few warm training steps of the task's model. */
  throughput: number;
  /** The WebGPU adapter, when WebGPU was used. */
  adapter?: string;
  /** Largest relative difference of the first training step against the CPU backend. */
  relativeError?: number;
  /** Backends tried and passed over, with the reason each was. */
  skipped: Array<{ name: string; reason: string }>;
}

/** A GPU backend whose first step strays further than this from the CPU's is not trusted. */
export const STEP_TOLERANCE = 1e-3;

/** max |a − b| / max(|b|, 10⁻³) over every weight. */
export function relativeError(a: Weights, b: Weights): number {
  let worst = 0;
  a.forEach((t, i) => {
    const u = b[i]!;
    for (let j = 0; j < t.length; j++) worst = Math.max(worst, Math.abs(t[j]! - u[j]!) / Math.max(Math.abs(u[j]!), 1e-3));
  });
  return worst;
}

/** A backend that has not started by then never will (a WASM worker blocked by policy waits forever). */
const START_TIMEOUT_MS = 30_000;

/** Makes `name` the active TF.js backend; false where it is not registered or does not start. */
export async function activate(name: string): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), START_TIMEOUT_MS)));
  const start = (async () => {
    const ok = await tf.setBackend(name);
    if (ok) await tf.ready();
    return ok;
  })().catch(() => false);
  try {
    return await Promise.race([start, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface AdapterInfo {
  info?: { vendor?: string; architecture?: string; description?: string };
}

/** The WebGPU adapter's vendor and architecture, or undefined where there is none. */
export async function webgpuAdapter(): Promise<string | undefined> {
  const gpu = (navigator as { gpu?: { requestAdapter(): Promise<AdapterInfo | null> } }).gpu;
  const adapter = await gpu?.requestAdapter().catch(() => null);
  if (!adapter) return undefined;
  return [adapter.info?.vendor, adapter.info?.architecture].filter(Boolean).join(' ') || 'unknown adapter';
}

/**
 * Where the WASM backend finds its binaries. Single-threaded (SIMD where there is SIMD):
 * TF.js's threaded build hands its workers its factory as `Function.prototype.toString()`
 * text, which after bundling refers to names outside it, so the workers fail to start.
 */
export function configureWasm(path = new URL('/tfjs-wasm/', location.href).href): void {
  setWasmPaths(path);
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
}

/**
 * The fastest backend this browser trains the preset on correctly: WebGPU, then WebGL,
 * then WASM (dense models only: it lacks the convolution and embedding gradients), then CPU. A GPU
 * backend's first training step is checked against the CPU backend's from the same
 * weights and data; past STEP_TOLERANCE it is passed over, and the reason kept.
 */
export async function chooseBrowserBackend(task: TaskModel, options: { wasmPath?: string; force?: string } = {}): Promise<BackendChoice> {
  configureWasm(options.wasmPath);
  const skipped: BackendChoice['skipped'] = [];
  const wasm = trainsOnWasm(task.model);
  const candidates = options.force ? [options.force] : preferredBackends('browser', task.model).filter((b) => wasm || b !== 'wasm');
  if (!wasm && !options.force) skipped.push({ name: 'wasm', reason: 'no convolution or embedding gradient in the WASM backend' });
  let reference: Weights | undefined;
  for (const name of candidates) {
    let adapter: string | undefined;
    if (name === 'webgpu') {
      adapter = await webgpuAdapter();
      if (!adapter) {
        skipped.push({ name, reason: 'no WebGPU adapter in this browser' });
        continue;
      }
      // Convolutions as one im2col pass: several times faster on software and small GPUs.
      tf.env().set('WEBGPU_CONV_SEPARATE_IM2COL_SHADER', true);
    }
    if (!(await activate(name))) {
      skipped.push({ name, reason: 'the backend did not start' });
      continue;
    }
    let relative: number | undefined;
    if (name === 'webgpu' || name === 'webgl') {
      const step = await probeStep(task);
      if (!reference) {
        await activate('cpu');
        reference = await probeStep(task);
        await activate(name);
      }
      relative = relativeError(step, reference);
      if (!(relative <= STEP_TOLERANCE)) {
        skipped.push({ name, reason: `its first training step differs from the CPU's by ${relative.toExponential(1)} (tolerance ${STEP_TOLERANCE})` });
        continue;
      }
    }
    return {
      name,
      throughput: await measureThroughput(task),
      skipped,
      ...(adapter ? { adapter } : {}),
      ...(relative === undefined ? {} : { relativeError: relative }),
    };
  }
  throw new Error(`no TensorFlow.js backend can train here: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}`);
}
