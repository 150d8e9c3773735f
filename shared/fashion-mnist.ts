import { TributaryError } from './errors.ts';
import { parseIdx } from './idx.ts';
import { toLabelledSet, type LabelledSet } from './dataset.ts';

/** Fashion-MNIST from wherever the runtime keeps it: disk in Node, a fetch in browsers. */

export const FASHION_MNIST_CLASSES = 10;

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
