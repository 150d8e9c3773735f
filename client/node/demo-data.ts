import { BUILTIN_DATASETS, isBuiltin } from '../../shared/data/builtin.ts';
import { firstRows, type LabelledSet } from '../../shared/data/dataset.ts';
import { demoShard } from '../../shared/data/shards.ts';
import { TributaryError } from '../../shared/errors.ts';
import type { TaskSpec } from '../../shared/protocol/task.ts';
import { datasetFiles, type DatasetDirs } from '../../node/dataset-files.ts';

/**
 * The demo stand-in for a device's own data: shard `shard` of the task's built-in training
 * set (its first trainLimit samples), cut as the task's partition says (same seed, same
 * cut, on every device).
 */
export async function loadDemoShard(spec: TaskSpec, shard: number, dirs: DatasetDirs = {}): Promise<LabelledSet> {
  if (!isBuiltin(spec.dataset)) throw new TributaryError('DATA_NOT_FOUND', `task "${spec.name}" trains on its devices' own data: pass --data`);
  const train = await BUILTIN_DATASETS[spec.dataset].load(datasetFiles(spec.dataset, dirs), 'train');
  return demoShard(firstRows(train, spec.trainLimit), spec, shard);
}
