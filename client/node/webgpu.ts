import * as tf from '@tensorflow/tfjs-core';
import { TributaryError } from '../../shared/errors.ts';
import type { TaskModel } from '../../shared/protocol/task.ts';
import type { ActivatedBackend } from '../federated-client.ts';
import { measureThroughput } from '../probe.ts';
import { activateNodeBackend } from './tf.ts';

/** Where Debian's chromium package puts the SwiftShader Vulkan driver: WebGPU on a machine without a GPU. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

export interface GpuBackendChoice extends ActivatedBackend {
  /** Why the node is not training on WebGPU although it was allowed to: for the operator to act on. */
  warning?: string;
}

/**
 * Starts TF.js's WebGPU backend on Dawn (npm `webgpu`). Returns the adapter, or why there
 * is none. tfjs-backend-webgpu registers itself only if `navigator.gpu` exists when it is
 * first evaluated, hence Dawn first and the backend imported after it.
 */
async function startWebGpu(): Promise<{ adapter: string } | { reason: string }> {
  let gpu: GPU;
  try {
    const dawn = await import('webgpu');
    Object.assign(globalThis, dawn.globals); // GPUBufferUsage, GPUMapMode, … which the backend reads as globals
    gpu = dawn.create([]);
  } catch (error) {
    return { reason: `Dawn (npm package webgpu) did not load: ${(error as Error).message}` };
  }
  const adapter = await gpu.requestAdapter().catch(() => null);
  if (!adapter) {
    // Dawn turns down drivers it cannot use (Mesa's lavapipe, say), so this is the usual case on a machine without a GPU.
    return { reason: `no WebGPU adapter: set VK_ICD_FILENAMES=${SWIFTSHADER_ICD} for SwiftShader, or run on a machine with a GPU` };
  }
  const { vendor, architecture, description } = adapter.info;
  const name = [vendor, architecture].filter(Boolean).join(' ') || description || 'unknown adapter';
  // Node 20 has no global navigator; later versions have one without `gpu`.
  const scope = globalThis as { navigator?: object };
  if (scope.navigator) Object.defineProperty(scope.navigator, 'gpu', { value: gpu, configurable: true });
  else scope.navigator = { gpu };
  await import('@tensorflow/tfjs-backend-webgpu');
  // Convolutions as one im2col pass: about three times faster CNN steps on SwiftShader.
  tf.env().set('WEBGPU_CONV_SEPARATE_IM2COL_SHADER', true);
  // setBackend resolves false (it does not throw) when the backend fails to initialize.
  if (!(await tf.setBackend('webgpu').catch(() => false))) return { reason: `the WebGPU backend did not start on ${name}` };
  await tf.ready();
  return { adapter: name };
}

/**
 * The GPU node's backend: WebGPU when Dawn finds an adapter (a GPU, or SwiftShader), else
 * the edge client's choice (WASM for dense models, CPU for CNNs) with a warning saying why.
 * `forced` webgpu without an adapter is an error; forced wasm or cpu skips WebGPU.
 */
export async function activateGpuBackend(task: TaskModel, forced = 'auto'): Promise<GpuBackendChoice> {
  if (forced !== 'auto' && forced !== 'webgpu') {
    const name = await activateNodeBackend(task.model, forced);
    return { name, throughput: await measureThroughput(task) };
  }
  const gpu = await startWebGpu();
  if ('adapter' in gpu) return { name: 'webgpu', adapter: gpu.adapter, throughput: await measureThroughput(task) };
  if (forced === 'webgpu') throw new TributaryError('BACKEND_UNAVAILABLE', `webgpu: ${gpu.reason}`);
  const name = await activateNodeBackend(task.model);
  return { name, throughput: await measureThroughput(task), warning: `${gpu.reason}; training on ${name}` };
}
