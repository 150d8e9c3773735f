import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { IdxSource } from '../shared/data/fashion-mnist.ts';

/** IDX files in a folder, gzipped (as Debian ships them) or not. */
export const idxFolder = (dir: string): IdxSource => async (name) =>
  readFile(join(dir, `${name}.gz`)).then(gunzipSync, () => readFile(join(dir, name)).catch(() => undefined));
