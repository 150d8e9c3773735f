import type { LabelledSet } from '../../shared/data/dataset.ts';
import type { IdxSource } from '../../shared/data/fashion-mnist.ts';
import { splitOnce } from './splits.ts';

/**
 * The held-out sets the server evaluates global models on: the first `limit` samples of
 * Fashion-MNIST's t10k split, views of one copy shared by every task (evaluation only reads them).
 */
export function heldOutTestSets(source: IdxSource): (limit: number) => Promise<LabelledSet> {
  return splitOnce(source, 't10k');
}
