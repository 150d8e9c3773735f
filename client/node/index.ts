/**
 * `tributary/client` in Node (the `node` condition): the SDK's names (client/index.ts) and
 * what a Node program needs around them: a WASM/CPU backend, the demo data, and the edge
 * client and GPU node loops the CLI runs.
 */
export * from '../index.ts';
export { activateNodeBackend } from './tf.ts';
export { loadDemoShard } from './fashion-mnist.ts';
export { FASHION_MNIST_DIR } from '../../shared/data/fashion-mnist.ts';
export { runEdgeClient, type EdgeClientOptions } from './edge.ts';
export { runGpuNode, type GpuNodeOptions } from './gpu-node.ts';
