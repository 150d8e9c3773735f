import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { BUILTIN_DATASETS, type BuiltinName, type FileSource } from '../shared/data/builtin.ts';

/** Where each built-in data set's files are read from; a name left out uses its package's folder. */
export type DatasetDirs = Partial<Record<BuiltinName, string>>;

/** Files in a folder, gzipped (as Debian ships IDX files) or not. */
export const folderFiles = (dir: string): FileSource => async (name) =>
  readFile(join(dir, `${name}.gz`)).then(gunzipSync, () => readFile(join(dir, name)).catch(() => undefined));

/** A package folder: `npm:<package>/<folder>` is resolved where Node resolves the package. */
export function resolveDir(dir: string): string {
  if (!dir.startsWith('npm:')) return dir;
  const [pkg = '', ...rest] = dir.slice('npm:'.length).split('/');
  // The package root is the nearest folder above its entry point with a package.json (its exports may hide package.json itself).
  let root = dirname(createRequire(import.meta.url).resolve(pkg));
  while (!existsSync(join(root, 'package.json')) && dirname(root) !== root) root = dirname(root);
  return join(root, ...rest);
}

export function datasetFiles(name: BuiltinName, dirs: DatasetDirs = {}): FileSource {
  return folderFiles(resolveDir(dirs[name] ?? BUILTIN_DATASETS[name].defaultDir));
}

/** `name=dir` pairs (CLI --dataset-dir) as DatasetDirs. */
export function parseDatasetDirs(pairs: readonly string[], isName: (name: string) => name is BuiltinName): DatasetDirs {
  const dirs: DatasetDirs = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    const name = pair.slice(0, at);
    if (at < 1 || !isName(name)) throw new Error(`--dataset-dir takes <name>=<folder> with a built-in name (${Object.keys(BUILTIN_DATASETS).join(', ')}), got "${pair}"`);
    dirs[name] = pair.slice(at + 1);
  }
  return dirs;
}
