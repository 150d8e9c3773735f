import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The round engine, the SDK, the pages and the CLI know no data set: only the data code
 * (shared/data/) and the built-in task definitions in it name one. A product file that
 * mentions Fashion-MNIST, its 784 pixels or its 10 classes has a data set baked in.
 */
const ROOT = join(import.meta.dirname, '..', '..');
const PRODUCT = ['server', 'client', 'shared', 'web', 'cli', 'node'];
const ALLOWED = ['shared/data/'];
const NAMES_A_DATA_SET = /fashion[-_ ]?mnist|\bf?mnist\b|\b784\b|\b(10|ten) classes\b|\b28\s*[×x]\s*28\b/i;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|html|css)$/.test(name) ? [path] : [];
  });
}

describe('no data set is baked into the product', () => {
  it('names Fashion-MNIST, 784 features or 10 classes only in the data code and the built-in task definitions', () => {
    const offenders = PRODUCT.flatMap((dir) => sourceFiles(join(ROOT, dir)))
      .map((path) => relative(ROOT, path))
      .filter((path) => !ALLOWED.some((allowed) => path.startsWith(allowed)))
      .flatMap((path) => readFileSync(join(ROOT, path), 'utf8').split('\n').flatMap((line, i) => (NAMES_A_DATA_SET.test(line) ? [`${path}:${i + 1}: ${line.trim()}`] : [])));
    expect(offenders).toEqual([]);
  });
});
