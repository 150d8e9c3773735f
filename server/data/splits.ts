import type { LabelledSet } from '../../shared/data/dataset.ts';
import { loadFashionMnist, type FashionMnistSplit, type IdxSource } from '../../shared/data/fashion-mnist.ts';

/** The first `limit` rows of `set` (0: all) as views of it: no copy. */
function firstRows(set: LabelledSet, limit: number): LabelledSet {
  if (limit <= 0 || limit >= set.n) return set;
  return { x: set.x.subarray(0, limit * set.features), y: set.y.subarray(0, limit), n: limit, features: set.features };
}

/**
 * A Fashion-MNIST split loaded once, whatever limits are asked of it: each limit is a view
 * of the first rows, the same rows a loader given that limit reads. So memory holds one
 * copy of the split, not one per distinct limit, which anyone creating tasks (or asking
 * for their demo shards) could otherwise multiply. A failed load is not kept, so data
 * installed later is found.
 */
export function splitOnce(source: IdxSource, split: FashionMnistSplit): (limit: number) => Promise<LabelledSet> {
  let loaded: Promise<LabelledSet> | undefined;
  return async (limit) => {
    loaded ??= loadFashionMnist(source, split).catch((error: unknown) => {
      loaded = undefined;
      throw error;
    });
    return firstRows(await loaded, limit);
  };
}
