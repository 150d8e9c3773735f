import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { concatSets, type LabelledSet } from '../../shared/data/dataset.ts';
import { encodeRows, encodeText, labelIndex } from '../../shared/data/encode.ts';
import { parseCsv } from '../../shared/data/csv.ts';
import type { DataSchema, ImageSchema } from '../../shared/data/schema.ts';
import { TributaryError } from '../../shared/errors.ts';

/**
 * An edge device's own data, read by the task's schema: a CSV file (header row, one sample
 * a row), a folder with one subfolder of PNG or JPEG images per label, or a UTF-8 text file.
 */
export async function loadLocalData(path: string, schema: DataSchema): Promise<LabelledSet> {
  const info = await stat(path).catch(() => {
    throw new TributaryError('DATA_NOT_FOUND', path);
  });
  if (schema.kind === 'image') {
    if (!info.isDirectory()) throw new TributaryError('DATA_MALFORMED', `${path}: an image task reads a folder with one subfolder of images per label`);
    return loadImageFolder(path, schema);
  }
  if (!info.isFile()) throw new TributaryError('DATA_MALFORMED', `${path} is not a file`);
  const text = await readFile(path, 'utf8');
  if (text.trim().length === 0) throw new TributaryError('DATA_EMPTY', `${path} is empty`);
  return schema.kind === 'text' ? encodeText(schema, text) : encodeRows(schema, parseCsv(text, path));
}

const DECODERS: Record<string, (bytes: Buffer) => { width: number; height: number; data: Uint8Array }> = {
  '.png': (bytes) => PNG.sync.read(bytes),
  '.jpg': (bytes) => jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true }),
  '.jpeg': (bytes) => jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true }),
};

/** Images in `<folder>/<label>/`, decoded (pngjs, jpeg-js), resized to the schema's size (TF.js bilinear) and scaled to [0, 1]. */
async function loadImageFolder(folder: string, schema: ImageSchema): Promise<LabelledSet> {
  const sets: LabelledSet[] = [];
  const labels = (await readdir(folder, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  for (const name of labels) {
    const label = labelIndex(schema.labels, schema.labels.includes(name) ? name : Number(name), `folder ${name}`);
    const files = (await readdir(join(folder, name))).filter((f) => extname(f).toLowerCase() in DECODERS).sort();
    for (const file of files) sets.push(decodeImage(await readFile(join(folder, name, file)), `${name}/${file}`, label, schema));
  }
  if (sets.length === 0) throw new TributaryError('DATA_EMPTY', `${folder} has no PNG or JPEG images in per-label subfolders (${schema.labels.join(', ')})`);
  return concatSets(sets);
}

function decodeImage(bytes: Buffer, name: string, label: number, schema: ImageSchema): LabelledSet {
  let image: { width: number; height: number; data: Uint8Array };
  try {
    image = DECODERS[extname(name).toLowerCase()]!(bytes);
  } catch (error) {
    throw new TributaryError('DATA_MALFORMED', `${name}: ${(error as Error).message}`);
  }
  const x = tf.tidy(() => {
    const rgba = tf.tensor3d(Float32Array.from(image.data), [image.height, image.width, 4]);
    const rgb = tf.slice(rgba, [0, 0, 0], [image.height, image.width, 3]);
    const channels = schema.channels === 1 ? tf.sum(tf.mul(rgb, tf.tensor1d([0.299, 0.587, 0.114])), 2, true) : rgb;
    const resized = tf.image.resizeBilinear(channels as tf.Tensor3D, [schema.height, schema.width]);
    return tf.div(tf.clipByValue(resized, 0, 255), 255).dataSync() as Float32Array;
  });
  return { x: Float32Array.from(x), y: Int32Array.of(label), n: 1, features: x.length };
}
