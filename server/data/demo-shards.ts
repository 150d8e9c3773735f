import { encodeShard } from '../../shared/codec/demo-shard.ts';
import { demoShard, type IdxSource } from '../../shared/data/fashion-mnist.ts';
import type { LabelledSet } from '../../shared/data/dataset.ts';
import type { TaskSpec } from '../../shared/protocol/task.ts';
import { splitOnce } from './splits.ts';

/** Shards kept encoded: a contribute page asks once and caches, but many pages may ask. */
const CACHED_SHARDS = 32;

/**
 * Demo data for browsers: the shard a task's partition gives a device, cut exactly as
 * edge clients cut it (same seed, same partition), encoded for the wire. It stands in
 * for the data a real contributor would hold; it is public Fashion-MNIST.
 */
export class DemoShards {
  /** One copy of the training split, whatever trainLimits tasks have. */
  private readonly train: (limit: number) => Promise<LabelledSet>;
  private readonly cache = new Map<string, Uint8Array>();

  constructor(source: IdxSource) {
    this.train = splitOnce(source, 'train');
  }

  async shard(spec: TaskSpec, shard: number): Promise<Uint8Array> {
    const key = JSON.stringify([spec.partition, spec.shards, spec.seed, spec.trainLimit, shard]);
    const cached = this.cache.get(key);
    if (cached) return cached;
    // The first trainLimit samples, as edge clients read them.
    const encoded = encodeShard(demoShard(await this.train(spec.trainLimit), spec, shard));
    if (this.cache.size >= CACHED_SHARDS) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, encoded);
    return encoded;
  }
}
