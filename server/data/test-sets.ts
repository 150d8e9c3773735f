import type { LabelledSet } from '../../shared/data/dataset.ts';
import { loadFashionMnist, type IdxSource } from '../../shared/data/fashion-mnist.ts';

/**
 * The held-out sets the server evaluates global models on: the first `limit` samples of
 * Fashion-MNIST's t10k split, each size loaded once and shared by the tasks that ask for it.
 */
export function heldOutTestSets(source: IdxSource): (limit: number) => Promise<LabelledSet> {
  const loaded = new Map<number, Promise<LabelledSet>>();
  return (limit) => {
    if (!loaded.has(limit)) loaded.set(limit, loadFashionMnist(source, 't10k', limit));
    return loaded.get(limit)!;
  };
}
