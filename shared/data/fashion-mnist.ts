import { TributaryError } from '../errors.ts';
import { parseIdx } from './idx.ts';
import { toLabelledSet, type LabelledSet } from './dataset.ts';
import type { ImageSchema } from './schema.ts';

/** Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from wherever the runtime keeps it: disk in Node, a fetch in browsers. */

/** Where Debian's dataset-fashion-mnist package puts the IDX files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Class names, by label. */
export const FASHION_MNIST_LABELS = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

export const FASHION_MNIST_SCHEMA: ImageSchema = { kind: 'image', height: 28, width: 28, channels: 1, labels: FASHION_MNIST_LABELS };

/** Returns a file's (decompressed) bytes by IDX base name, or undefined when missing. */
export type IdxSource = (name: string) => Promise<Uint8Array | undefined>;

export type FashionMnistSplit = 'train' | 't10k';

export async function loadFashionMnist(source: IdxSource, split: FashionMnistSplit, limit = 0): Promise<LabelledSet> {
  const read = async (name: string) => {
    const bytes = await source(name);
    if (!bytes) {
      throw new TributaryError('DATA_NOT_FOUND', `${name} (install Debian's dataset-fashion-mnist)`);
    }
    return parseIdx(bytes);
  };
  const [images, labels] = await Promise.all([
    read(`${split}-images-idx3-ubyte`),
    read(`${split}-labels-idx1-ubyte`),
  ]);
  return toLabelledSet(images, labels, limit);
}
