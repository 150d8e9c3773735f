/**
 * `tributary/client` in Node (the `node` condition): the SDK's names (client/index.ts) and
 * what a Node program needs around them: a WASM/CPU backend, the demo data, and the edge
 * client and GPU node loops the CLI runs.
 */
export * from '../index.ts';
export { activateNodeBackend } from './tf.ts';
export { loadDemoShard } from './demo-data.ts';
export { loadLocalData } from './local-data.ts';
export { parseCsv } from '../../shared/data/csv.ts';
export { runEdgeClient, type EdgeClientOptions } from './edge.ts';
export { runGpuNode, type GpuNodeOptions } from './gpu-node.ts';
