import * as tf from '@tensorflow/tfjs-core';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { activate, configureWasm, webgpuAdapter } from '../../client/browser/backend.ts';
import { PROBE_HYPER, probeBatch, probeWeights } from '../../client/probe.ts';
import { Trainer } from '../../client/trainer.ts';
import { trainsOnWasm } from '../../shared/ml/models.ts';
import { DEFAULT_MODELS } from '../../shared/ml/model-spec.ts';
import { BUILTIN_DATASETS, DEFAULT_DATASET } from '../../shared/data/builtin.ts';
import { BENCH_BACKENDS, type BenchBackend, type BenchResults, type Measurement } from '../../shared/protocol/device-bench.ts';
import type { TaskModel } from '../../shared/protocol/task.ts';

/**
 * The device benchmark: how fast this browser trains each model preset on every TF.js
 * backend it has. Seeded random data of the preset's shape (client/probe.ts), the real
 * Trainer, batch 64. A pass is four steps, as in measureThroughput, so the samples/s here
 * are what the contribute page reports; it ends with the weights read back, which is the
 * only point where a GPU backend has surely finished its work.
 *
 * The results also go, as JSON, into `#results` (with `data-done` once finished), which
 * `npm run bench -- browser` reads.
 */

/** The default built-in task's images, through a dense and a convolutional model. */
const BENCH_MODELS: Record<string, TaskModel> = {
  mlp: { model: DEFAULT_MODELS.mlp, data: BUILTIN_DATASETS[DEFAULT_DATASET].schema },
  cnn: { model: DEFAULT_MODELS.cnn, data: BUILTIN_DATASETS[DEFAULT_DATASET].schema },
};
const PRESET_NAMES = Object.keys(BENCH_MODELS);

const STEPS_PER_PASS = 4;
const MIN_PASSES = 3;
const MAX_PASSES = 15;
/** Timed passes continue past MIN_PASSES until this much time is spent on one pair. */
const TIME_BUDGET_MS = 4_000;

/** Renderers that draw on the CPU: their numbers say nothing about a real GPU. */
const SOFTWARE_RENDERER = /swiftshader|llvmpipe|softpipe|software|basic render/i;

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const say = (id: string, text: string) => ($(id).textContent = text);
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** The WebGL renderer string, unmasked where the browser allows it. */
function webglRenderer(): string | undefined {
  const gl = document.createElement('canvas').getContext('webgl2') ?? document.createElement('canvas').getContext('webgl');
  if (!gl) return undefined;
  const debug = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = String(gl.getParameter(debug ? debug.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  gl.getExtension('WEBGL_lose_context')?.loseContext();
  return renderer;
}

/** First step on a fresh model, one untimed warm pass, then timed passes. */
async function timeTraining(preset: string): Promise<Pick<Measurement, 'stepMs' | 'firstStepMs' | 'samplesPerSecond' | 'passes'>> {
  const task = BENCH_MODELS[preset]!;
  const trainer = await Trainer.create(task, 7);
  const global = probeWeights(trainer.weightLengths);
  const one = probeBatch(task, PROBE_HYPER.batchSize);
  const pass = probeBatch(task, STEPS_PER_PASS * PROBE_HYPER.batchSize);
  try {
    let started = performance.now();
    await trainer.train(global, one, PROBE_HYPER, 1);
    const firstStepMs = performance.now() - started;
    await trainer.train(global, pass, PROBE_HYPER, 1);
    const stepTimes: number[] = [];
    const budgetEnds = performance.now() + TIME_BUDGET_MS;
    while (stepTimes.length < MIN_PASSES || (stepTimes.length < MAX_PASSES && performance.now() < budgetEnds)) {
      started = performance.now();
      await trainer.train(global, pass, PROBE_HYPER, stepTimes.length + 2);
      stepTimes.push((performance.now() - started) / STEPS_PER_PASS);
    }
    const stepMs = median(stepTimes);
    return { stepMs, firstStepMs, samplesPerSecond: (PROBE_HYPER.batchSize * 1000) / stepMs, passes: stepTimes.length };
  } finally {
    trainer.dispose();
  }
}

/** Makes the backend active, or says why it cannot be. */
async function start(backend: BenchBackend, adapter: string | undefined): Promise<string | undefined> {
  if (backend === 'webgpu') {
    if (!adapter) return 'no WebGPU adapter in this browser';
    // As chooseBrowserBackend does: convolutions as one im2col pass.
    tf.env().set('WEBGPU_CONV_SEPARATE_IM2COL_SHADER', true);
  }
  return (await activate(backend)) ? undefined : 'the backend did not start';
}

const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));

function render(results: BenchResults): void {
  const body = $<HTMLTableSectionElement>('rows');
  body.replaceChildren();
  for (const preset of PRESET_NAMES) {
    const cpu = results.measurements.find((m) => m.preset === preset && m.backend === 'cpu' && m.status === 'ok');
    for (const m of results.measurements.filter((r) => r.preset === preset)) {
      const row = body.insertRow();
      row.dataset.preset = m.preset;
      row.dataset.backend = m.backend;
      const software = results.softwareRendered.includes(m.backend) ? ' (software)' : '';
      for (const text of [m.preset, m.backend + software]) row.insertCell().textContent = text;
      if (m.status === 'ok') {
        const ratio = cpu ? `${(cpu.stepMs! / m.stepMs!).toFixed(2)}×` : '—';
        for (const text of [fmt(m.stepMs!), fmt(m.firstStepMs!), Math.round(m.samplesPerSecond!).toLocaleString(), ratio]) row.insertCell().textContent = text;
      } else {
        const cell = row.insertCell();
        cell.colSpan = 4;
        cell.className = 'muted';
        cell.textContent = m.status === 'n/a' ? `n/a (${m.reason})` : `${m.status}: ${m.reason}`;
      }
    }
  }
}

async function run(): Promise<void> {
  const button = $<HTMLButtonElement>('run');
  button.disabled = true;
  delete $('results').dataset.done;
  const began = performance.now();
  configureWasm();
  const adapter = await webgpuAdapter();
  const renderer = webglRenderer();
  const results: BenchResults = {
    userAgent: navigator.userAgent,
    hardwareConcurrency: navigator.hardwareConcurrency,
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    ...(adapter ? { webgpuAdapter: adapter } : {}),
    ...(renderer ? { webglRenderer: renderer } : {}),
    softwareRendered: [
      ...(adapter && SOFTWARE_RENDERER.test(adapter) ? ['webgpu' as const] : []),
      ...(renderer && SOFTWARE_RENDERER.test(renderer) ? ['webgl' as const] : []),
    ],
    batchSize: PROBE_HYPER.batchSize,
    stepsPerPass: STEPS_PER_PASS,
    measurements: [],
    durationMs: 0,
  };
  say('adapter', adapter ?? 'none');
  say('renderer', renderer ?? 'none');
  say('isolation', results.crossOriginIsolated ? 'yes' : 'no');
  $('software').classList.toggle('hidden', results.softwareRendered.length === 0);
  const total = BENCH_BACKENDS.length * PRESET_NAMES.length;
  for (const backend of BENCH_BACKENDS) {
    const unavailable = await start(backend, adapter);
    if (backend === 'wasm' && !unavailable) {
      results.wasm = {
        simd: (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) as boolean,
        multithread: (await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) as boolean,
        threads: getThreadsCount(),
      };
      say('wasm', `${results.wasm.simd ? 'SIMD' : 'no SIMD'}, ${results.wasm.threads} thread${results.wasm.threads === 1 ? '' : 's'}`);
    }
    for (const preset of PRESET_NAMES) {
      const base = { preset, backend };
      say('status', `Timing ${preset} on ${backend} (${results.measurements.length + 1} of ${total})…`);
      if (unavailable) {
        results.measurements.push({ ...base, status: 'unavailable', reason: unavailable });
      } else if (backend === 'wasm' && !trainsOnWasm(BENCH_MODELS[preset]!.model)) {
        results.measurements.push({ ...base, status: 'n/a', reason: 'no conv filter gradient' });
      } else {
        try {
          results.measurements.push({ ...base, status: 'ok', ...(await timeTraining(preset)) });
        } catch (error) {
          results.measurements.push({ ...base, status: 'failed', reason: (error as Error).message });
        }
      }
      render(results);
    }
  }
  results.durationMs = performance.now() - began;
  say('status', `Done in ${(results.durationMs / 1000).toFixed(0)} s.`);
  const pre = $('results');
  pre.textContent = JSON.stringify(results, null, 2);
  pre.dataset.done = 'true';
  button.disabled = false;
  button.textContent = 'Run again';
}

say('cores', String(navigator.hardwareConcurrency));
$('run').addEventListener('click', () => {
  run().catch((error: unknown) => {
    say('status', 'The benchmark stopped.');
    say('error', (error as Error).message);
    $('results').dataset.error = (error as Error).message;
  });
});
