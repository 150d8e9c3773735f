import { TributaryError } from '../errors.ts';
import { parseIdx } from './idx.ts';
import { selectRows, toLabelledSet, type LabelledSet } from './dataset.ts';
import { partitionIndices } from './partition.ts';
import type { TaskSpec } from '../protocol/task.ts';

/** Fashion-MNIST from wherever the runtime keeps it: disk in Node, a fetch in browsers. */

/** Where Debian's dataset-fashion-mnist package puts the IDX files: the default everywhere a folder is asked for. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export const FASHION_MNIST_CLASSES = 10;

/** Class names, by label. */
export const FASHION_MNIST_LABELS = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'] as const;

/** Returns a file's (decompressed) bytes by IDX base name, or undefined when missing. */
export type IdxSource = (name: string) => Promise<Uint8Array | undefined>;

export type FashionMnistSplit = 'train' | 't10k';

export async function loadFashionMnist(source: IdxSource, split: FashionMnistSplit, limit = 0): Promise<LabelledSet> {
  const read = async (name: string) => {
    const bytes = await source(name);
    if (!bytes) {
      throw new TributaryError('DATA_NOT_FOUND', `${name} (install Debian's dataset-fashion-mnist or pass --data)`);
    }
    return parseIdx(bytes);
  };
  const [images, labels] = await Promise.all([
    read(`${split}-images-idx3-ubyte`),
    read(`${split}-labels-idx1-ubyte`),
  ]);
  return toLabelledSet(images, labels, limit);
}

/**
 * The demo stand-in for a device's own data: shard `shard` of the training set (its first
 * `trainLimit` samples), cut as the task's partition says. Same seed, same cut, whoever
 * cuts it: an edge client from its files, the server for a browser.
 */
export function demoShard(train: LabelledSet, spec: Pick<TaskSpec, 'shards' | 'partition' | 'seed'>, shard: number): LabelledSet {
  const shards = partitionIndices(train.y, FASHION_MNIST_CLASSES, spec.shards, spec.partition, spec.seed);
  return selectRows(train, shards[shard % shards.length]!);
}
