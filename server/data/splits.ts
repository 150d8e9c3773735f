import { firstRows, type LabelledSet } from '../../shared/data/dataset.ts';
import { BUILTIN_DATASETS, type BuiltinName, type FileSource, type Split } from '../../shared/data/builtin.ts';

/** Where the server reads each built-in data set's files. */
export type DatasetSources = (name: BuiltinName) => FileSource;

/**
 * The built-in data sets' splits, each loaded once whatever limits are asked of it: each
 * limit is a view of the first rows, the same rows a loader given that limit reads. So
 * memory holds one copy of a split, not one per distinct limit, which anyone creating tasks
 * (or asking for their demo shards) could otherwise multiply. A failed load is not kept,
 * so data installed later is found.
 */
export class BuiltinSplits {
  private readonly loaded = new Map<string, Promise<LabelledSet>>();

  constructor(private readonly sources: DatasetSources) {}

  async get(name: BuiltinName, split: Split, limit = 0): Promise<LabelledSet> {
    const key = `${name}/${split}`;
    let set = this.loaded.get(key);
    if (!set) {
      set = BUILTIN_DATASETS[name].load(this.sources(name), split);
      set.catch(() => this.loaded.delete(key));
      this.loaded.set(key, set);
    }
    return firstRows(await set, limit);
  }
}
