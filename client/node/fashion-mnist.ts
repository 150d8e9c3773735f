import type { LabelledSet } from '../../shared/data/dataset.ts';
import { demoShard, loadFashionMnist } from '../../shared/data/fashion-mnist.ts';
import type { TaskSpec } from '../../shared/protocol/task.ts';
import { idxFolder } from '../../node/idx-folder.ts';

/**
 * The demo stand-in for a device's own data: shard `shard` of the Fashion-MNIST
 * training set, cut as the task's partition says (same seed, same cut, on every device).
 */
export async function loadDemoShard(dir: string, spec: TaskSpec, shard: number): Promise<LabelledSet> {
  return demoShard(await loadFashionMnist(idxFolder(dir), 'train', spec.trainLimit), spec, shard);
}
