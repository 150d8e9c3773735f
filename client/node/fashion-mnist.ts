import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { LabelledSet } from '../../shared/data/dataset.ts';
import { demoShard, loadFashionMnist, type IdxSource } from '../../shared/data/fashion-mnist.ts';
import type { TaskSpec } from '../../shared/protocol/task.ts';

export const DEFAULT_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

const folder = (dir: string): IdxSource => async (name) =>
  readFile(join(dir, `${name}.gz`)).then(gunzipSync, () => readFile(join(dir, name)).catch(() => undefined));

/**
 * The demo stand-in for a device's own data: shard `shard` of the Fashion-MNIST
 * training set, cut as the task's partition says (same seed, same cut, on every device).
 */
export async function loadDemoShard(dir: string, spec: TaskSpec, shard: number): Promise<LabelledSet> {
  return demoShard(await loadFashionMnist(folder(dir), 'train', spec.trainLimit), spec, shard);
}
