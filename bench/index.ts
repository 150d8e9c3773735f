import type { BenchOptions } from './options.ts';

const benches: Record<string, () => Promise<{ run(options: BenchOptions): Promise<void> }>> = {
  quantization: () => import('./quantization.ts'),
  secagg: () => import('./secagg.ts'),
  optimizers: () => import('./optimizers.ts'),
  chaos: () => import('./chaos.ts'),
  'cluster-chaos': () => import('./cluster-chaos.ts'),
  scheduling: () => import('./scheduling.ts'),
  browser: () => import('./browser.ts'),
  robustness: () => import('./robustness.ts'),
  privacy: () => import('./privacy.ts'),
  'federated-evaluation': () => import('./federated-evaluation.ts'),
  tasks: () => import('./tasks.ts'),
  overhead: () => import('./overhead.ts'),
  'update-size': () => import('./update-size.ts'),
  load: () => import('./load.ts'),
  'aggregation-kernel': () => import('./aggregation-kernel.ts'),
};

export async function runBench(name: string, options: BenchOptions): Promise<void> {
  const load = benches[name];
  if (!load) {
    console.error(`unknown benchmark "${name}"; available: ${Object.keys(benches).join(', ')}`);
    process.exit(2);
  }
  await (await load()).run(options);
}
