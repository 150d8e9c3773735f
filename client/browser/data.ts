import type { LabelledSet } from '../../shared/data/dataset.ts';
import { decodeShard } from '../../shared/codec/demo-shard.ts';
import { TributaryError } from '../../shared/errors.ts';
import { getItem, setItem } from './storage.ts';

/**
 * A browser's training data: the demo shard its task assigns (fetched once and kept in
 * IndexedDB, standing for the contributor's own data), or labelled images the user picks.
 */
export async function demoShardData(server: string, taskId: number, shard: number): Promise<LabelledSet> {
  const url = new URL(`/api/tasks/${taskId}/demo-shard/${shard}`, server).href;
  let bytes = await getItem<Uint8Array>(`shard:${url}`);
  if (!bytes) {
    const response = await fetch(url);
    if (!response.ok) throw new TributaryError('DATA_NOT_FOUND', `demo shard ${shard} of task ${taskId}: HTTP ${response.status}`);
    bytes = new Uint8Array(await response.arrayBuffer());
    await setItem(`shard:${url}`, bytes);
  }
  return decodeShard(bytes);
}

/**
 * Images as Fashion-MNIST-like samples: 28×28 grey levels in [0, 1], light on dark (a
 * photo on a light background is inverted), all with the given label.
 */
export async function imagesToSamples(files: readonly Blob[], label: number, side = 28): Promise<LabelledSet> {
  const features = side * side;
  const x = new Float32Array(files.length * features);
  const canvas = new OffscreenCanvas(side, side);
  const context = canvas.getContext('2d', { willReadFrequently: true });
  if (!context) throw new TributaryError('DATA_MALFORMED', 'no 2D canvas here');
  for (const [i, file] of files.entries()) {
    const bitmap = await createImageBitmap(file);
    context.clearRect(0, 0, side, side);
    context.drawImage(bitmap, 0, 0, side, side);
    bitmap.close();
    const { data } = context.getImageData(0, 0, side, side);
    const grey = new Float32Array(features);
    let mean = 0;
    for (let p = 0; p < features; p++) {
      grey[p] = (0.299 * data[4 * p]! + 0.587 * data[4 * p + 1]! + 0.114 * data[4 * p + 2]!) / 255;
      mean += grey[p]! / features;
    }
    for (let p = 0; p < features; p++) x[i * features + p] = mean > 0.5 ? 1 - grey[p]! : grey[p]!;
  }
  return { x, y: new Int32Array(files.length).fill(label), n: files.length, features };
}

/** Two sets as one (the demo shard plus the user's own images, say). */
export function concatSets(a: LabelledSet, b: LabelledSet): LabelledSet {
  if (a.features !== b.features) throw new TributaryError('DATA_MALFORMED', `${a.features} vs ${b.features} features`);
  const x = new Float32Array(a.x.length + b.x.length);
  x.set(a.x);
  x.set(b.x, a.x.length);
  const y = new Int32Array(a.n + b.n);
  y.set(a.y);
  y.set(b.y, a.n);
  return { x, y, n: a.n + b.n, features: a.features };
}
