import { outputUnitsOf, targetOf, type DataSchema } from './schema.ts';
import { selectRows, type LabelledSet } from './dataset.ts';
import { partitionIndices } from './partition.ts';
import type { PartitionSpec } from '../protocol/task.ts';

/**
 * The demo stand-in for a device's own data: shard `shard` of a built-in training set, cut
 * as the task's partition says. Same seed, same cut, whoever cuts it: an edge client from
 * its files, the server for a browser.
 */
export function demoShard(train: LabelledSet, spec: { shards: number; partition: PartitionSpec; seed: number; data: DataSchema }, shard: number): LabelledSet {
  const target = targetOf(spec.data);
  const classes = target === 'binary' ? 2 : outputUnitsOf(spec.data);
  const shards = partitionIndices(train.y, classes, spec.shards, spec.partition, spec.seed, train.sources);
  return selectRows(train, shards[shard % shards.length]!);
}
