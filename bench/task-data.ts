import { datasetFiles } from '../node/dataset-files.ts';
import { BUILTIN_DATASETS, type BuiltinName } from '../shared/data/builtin.ts';
import { selectRows, type LabelledSet } from '../shared/data/dataset.ts';
import { demoShard } from '../shared/data/shards.ts';
import { withTaskDefaults, type TaskSpec } from '../shared/protocol/task.ts';

/**
 * A built-in task as the benches run it: the product's own spec (withTaskDefaults: the
 * task's model, partition and hyper-parameters), each client's shard cut by the product's
 * demoShard from the whole training set, and the built-in test split, each optionally cut
 * down to an even spread of rows to bound a bench's time.
 *
 * Why not the task's trainLimit/testLimit (the first N rows): the by-source sets are stored
 * source after source (fortunes topic by topic, in FORTUNE_TOPICS order), so the first N
 * rows hold the first sources only, and a by-topic split of them would not be the task's.
 * For IID data (fashion-mnist) an even spread of a shard is as good a sample as the first N.
 */

export interface TaskLimits {
  /** Rows each client keeps of the shard the product cuts for it; 0: all. */
  clientLimit: number;
  /** Rows of the test split scored; 0: all. */
  testLimit: number;
}

export interface TaskData {
  spec: TaskSpec;
  /** Client c's training rows. */
  shards: LabelledSet[];
  test: LabelledSet;
}

/** `limit` rows spread evenly over the set, in order (0 or ≥ n: the set itself). Keeps every source in proportion. */
export function spread(set: LabelledSet, limit: number): LabelledSet {
  if (limit <= 0 || limit >= set.n) return set;
  return selectRows(set, Array.from({ length: limit }, (_, i) => Math.floor((i * set.n) / limit)));
}

/** The task as the product would create it for `clients` clients, every one of them in every round. */
export function benchSpec(name: BuiltinName, clients: number, rounds: number, seed: number): TaskSpec {
  return withTaskDefaults({ name: `${name} bench`, dataset: name, shards: clients, clientsPerRound: clients, rounds, scheduling: 'uniform', seed });
}

export async function loadTaskData(name: BuiltinName, spec: TaskSpec, limits: TaskLimits): Promise<TaskData> {
  const files = datasetFiles(name);
  const [train, test] = await Promise.all([BUILTIN_DATASETS[name].load(files, 'train'), BUILTIN_DATASETS[name].load(files, 'test')]);
  const shards = Array.from({ length: spec.shards }, (_, c) => spread(demoShard(train, spec, c), limits.clientLimit));
  return { spec, shards, test: spread(test, limits.testLimit) };
}
