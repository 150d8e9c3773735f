import { describe, expect, it } from 'vitest';
import { decodeShard } from '../../shared/codec/demo-shard.ts';
import { loadFashionMnist, type IdxSource } from '../../shared/data/fashion-mnist.ts';
import { demoShard } from '../../shared/data/shards.ts';
import { withTaskDefaults, type TaskRecord } from '../../shared/protocol/task.ts';
import { DemoShards } from '../../server/data/demo-shards.ts';
import { BuiltinSplits } from '../../server/data/splits.ts';
import { heldOutTestSets } from '../../server/data/test-sets.ts';
import { EvaluationSets } from '../../server/data/evaluation-sets.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROWS = 60;

/** An IDX file of unsigned bytes: magic, dimensions, data. */
function idx(dims: number[], data: Uint8Array): Uint8Array {
  const header = new Uint8Array(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  const view = new DataView(header.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  const out = new Uint8Array(header.length + data.length);
  out.set(header);
  out.set(data, header.length);
  return out;
}

/** A tiny Fashion-MNIST look-alike (2×2 images) that counts how often each file is read: each read is one more copy in memory. */
function countingSource(): { source: IdxSource; reads: Map<string, number> } {
  const reads = new Map<string, number>();
  const images = idx([ROWS, 2, 2], Uint8Array.from({ length: ROWS * 4 }, (_, i) => (i * 37) % 256));
  const labels = idx([ROWS], Uint8Array.from({ length: ROWS }, (_, i) => (i * 7) % 10));
  const source: IdxSource = async (name) => {
    reads.set(name, (reads.get(name) ?? 0) + 1);
    return name.endsWith('images-idx3-ubyte') ? images : labels;
  };
  return { source, reads };
}

const LIMITS = [0, 5, 10, 17, 23, 31, 40, 59, 60, 1000];

/** Review finding 10: every distinct limit used to load (and keep) its own copy of a split. */
describe('the server’s data sets, whatever limits tasks ask for', () => {
  it('reads the training split once for demo shards of many distinct trainLimits, cutting each exactly as a device would', async () => {
    const { source, reads } = countingSource();
    const shards = new DemoShards(new BuiltinSplits(() => source));
    for (const trainLimit of LIMITS) {
      const spec = withTaskDefaults({ name: 't', shards: 3, trainLimit, partition: { kind: 'dirichlet', alpha: 0.5 } });
      const expected = demoShard(await loadFashionMnist(countingSource().source, 'train', trainLimit), spec, 1);
      const got = decodeShard(await shards.shard(spec, 1));
      expect([...got.y]).toEqual([...expected.y]);
      expect([...got.x]).toEqual([...expected.x]);
    }
    expect(Object.fromEntries(reads)).toEqual({ 'train-images-idx3-ubyte': 1, 'train-labels-idx1-ubyte': 1 });
  });

  it('reads the test split once for many distinct testLimits, each set the first rows of one shared copy', async () => {
    const { source, reads } = countingSource();
    const testSet = heldOutTestSets(new BuiltinSplits(() => source), new EvaluationSets(join(tmpdir(), 'tributary-no-uploads')));
    const task = (testLimit: number): TaskRecord => ({ id: 1, spec: withTaskDefaults({ name: 't', testLimit }), status: 'running', completedRounds: 0, createdAt: '' });
    const sets = await Promise.all(LIMITS.map(async (testLimit) => (await testSet(task(testLimit)))!));
    for (const [i, limit] of LIMITS.entries()) {
      const expected = await loadFashionMnist(countingSource().source, 't10k', limit);
      expect({ n: sets[i]!.n, x: [...sets[i]!.x], y: [...sets[i]!.y] }).toEqual({ n: expected.n, x: [...expected.x], y: [...expected.y] });
    }
    expect(new Set(sets.map((s) => s.x.buffer)).size).toBe(1);
    expect(Object.fromEntries(reads)).toEqual({ 't10k-images-idx3-ubyte': 1, 't10k-labels-idx1-ubyte': 1 });
  });
});
