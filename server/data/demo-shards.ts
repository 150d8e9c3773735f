import { encodeShard } from '../../shared/codec/demo-shard.ts';
import { isBuiltin } from '../../shared/data/builtin.ts';
import { demoShard } from '../../shared/data/shards.ts';
import { TributaryError } from '../../shared/errors.ts';
import type { TaskSpec } from '../../shared/protocol/task.ts';
import type { BuiltinSplits } from './splits.ts';

/** Shards kept encoded: a contribute page asks once and caches, but many pages may ask. */
const CACHED_SHARDS = 32;

/**
 * Demo data for browsers: the shard a task's partition gives a device, cut exactly as
 * edge clients cut it (same seed, same partition), encoded for the wire. It stands in
 * for the data a real contributor would hold; it is a public built-in data set.
 */
export class DemoShards {
  private readonly cache = new Map<string, Uint8Array>();

  constructor(private readonly splits: BuiltinSplits) {}

  async shard(spec: TaskSpec, shard: number): Promise<Uint8Array> {
    if (!isBuiltin(spec.dataset)) throw new TributaryError('DATA_NOT_FOUND', `task "${spec.name}" trains on its devices' own data: it has no demo shards`);
    const key = JSON.stringify([spec.dataset, spec.partition, spec.shards, spec.seed, spec.trainLimit, shard]);
    const cached = this.cache.get(key);
    if (cached) return cached;
    // The first trainLimit samples, as edge clients read them.
    const encoded = encodeShard(demoShard(await this.splits.get(spec.dataset, 'train', spec.trainLimit), spec, shard));
    if (this.cache.size >= CACHED_SHARDS) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, encoded);
    return encoded;
  }
}
