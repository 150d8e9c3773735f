import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '@tensorflow/tfjs-backend-cpu';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { loadLocalData } from '../../client/node/local-data.ts';
import type { ImageSchema, TabularSchema, TextSchema } from '../../shared/data/schema.ts';

const TABLE: TabularSchema = {
  kind: 'tabular',
  columns: [
    { name: 'x', type: 'numeric', min: 0, max: 10 },
    { name: 'kind', type: 'categorical', categories: ['a', 'b'] },
  ],
  label: 'kind',
};
const TEXT: TextSchema = { kind: 'text', tokenizer: 'char', vocabulary: 'ab', sequenceLength: 2, stride: 1 };
const IMAGES: ImageSchema = { kind: 'image', height: 2, width: 2, channels: 1, labels: ['dark', 'light'] };

const dir = mkdtempSync(join(tmpdir(), 'tributary-local-data-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string | Buffer) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const codeOf = (promise: Promise<unknown>) => promise.then(() => undefined, (e: { code?: string }) => e.code);

/** A w × h PNG of one grey level. */
function png(width: number, height: number, level: number): Buffer {
  const image = new PNG({ width, height });
  image.data.fill(level);
  for (let i = 3; i < image.data.length; i += 4) image.data[i] = 255;
  return PNG.sync.write(image);
}

describe('an edge device’s own files, read by the task’s schema', () => {
  it('reads a CSV with quoted cells and CRLF line ends (papaparse), numbers scaled by the declared range', async () => {
    const set = await loadLocalData(file('rows.csv', 'x,kind,extra\r\n5,"b",ignored\r\n10,a,\r\n\r\n'), TABLE);
    expect(set.n).toBe(2);
    expect([...set.x]).toEqual([0.5, 1]);
    expect([...set.y]).toEqual([1, 0]);
  });

  it('answers a CSV missing a column, a non-numeric value and an empty file each with its own code', async () => {
    expect(await codeOf(loadLocalData(file('missing.csv', 'x\n1\n'), TABLE))).toBe('DATA_COLUMNS_MISSING');
    await expect(loadLocalData(file('words.csv', 'x,kind\n1,a\nseven,b\n'), TABLE)).rejects.toThrow(/row 2, column "x": "seven" is not a number/);
    expect(await codeOf(loadLocalData(file('empty.csv', ''), TABLE))).toBe('DATA_EMPTY');
    expect(await codeOf(loadLocalData(file('header-only.csv', 'x,kind\n'), TABLE))).toBe('DATA_EMPTY');
    expect(await codeOf(loadLocalData(join(dir, 'no-such.csv'), TABLE))).toBe('DATA_NOT_FOUND');
  });

  it('reads a text file as next-character windows', async () => {
    const set = await loadLocalData(file('corpus.txt', 'abab'), TEXT);
    expect(set.n).toBe(2);
    expect(await codeOf(loadLocalData(file('short.txt', 'ab'), TEXT))).toBe('DATA_EMPTY');
  });

  it('reads per-label folders of PNG and JPEG images, resized to the schema and scaled to [0, 1]; a broken image is DATA_MALFORMED', async () => {
    const root = join(dir, 'images');
    mkdirSync(join(root, 'dark'), { recursive: true });
    mkdirSync(join(root, 'light'), { recursive: true });
    writeFileSync(join(root, 'dark', 'one.png'), png(4, 4, 0));
    const white = Buffer.alloc(8 * 8 * 4, 255);
    writeFileSync(join(root, 'light', 'two.jpg'), jpeg.encode({ data: white, width: 8, height: 8 }, 90).data);
    const set = await loadLocalData(root, IMAGES);
    expect(set.n).toBe(2);
    expect(set.features).toBe(4);
    expect([...set.y]).toEqual([0, 1]);
    expect(Math.max(...set.x.subarray(0, 4))).toBe(0);
    expect(Math.min(...set.x.subarray(4))).toBeGreaterThan(0.98); // JPEG's rounding of white
    writeFileSync(join(root, 'light', 'broken.png'), Buffer.from('not a png'));
    expect(await codeOf(loadLocalData(root, IMAGES))).toBe('DATA_MALFORMED');
    expect(await codeOf(loadLocalData(join(dir, 'rows.csv'), IMAGES))).toBe('DATA_MALFORMED');
    mkdirSync(join(dir, 'no-images', 'dark'), { recursive: true });
    expect(await codeOf(loadLocalData(join(dir, 'no-images'), IMAGES))).toBe('DATA_EMPTY');
  });
});
