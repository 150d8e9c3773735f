import { homedir } from 'node:os';
import { join } from 'node:path';
import { runEdgeClient, type EdgeClientOptions } from './edge.ts';
import { activateGpuBackend } from './webgpu.ts';

/**
 * A GPU node takes the edge client's options except the fault injection, and open
 * enrollment: that enrolls devices as clients, and a GPU node needs a gpu enrollment.
 */
export type GpuNodeOptions = Omit<EdgeClientOptions, 'kind' | 'activateBackend' | 'openEnrollment' | 'crashAt' | 'disconnectEvery'>;

/** Its own identity: one enrolled as a client could not join as a GPU node. */
export const DEFAULT_GPU_IDENTITY_FILE = join(homedir(), '.tributary', 'gpu-identity.json');

/**
 * A GPU node: the edge client's loop, joined as kind gpu and training on WebGPU (Dawn)
 * where there is an adapter. Resolves when the task completes or is stopped.
 */
export function runGpuNode(options: GpuNodeOptions): Promise<'completed' | 'stopped'> {
  return runEdgeClient({
    ...options,
    kind: 'gpu',
    identityFile: options.identityFile ?? DEFAULT_GPU_IDENTITY_FILE,
    activateBackend: (task) => activateGpuBackend(task.spec, options.backend),
  });
}
