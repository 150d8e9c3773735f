import { TributaryError } from '../errors.ts';
import { encodeRows, type Row } from './encode.ts';
import { selectRows, type LabelledSet } from './dataset.ts';
import type { TabularSchema } from './schema.ts';
import { decodeUtf8 } from '../text.ts';

/**
 * Palmer Penguins (Gorman, Williams & Fraser 2014; CC0), as the npm package vega-datasets
 * ships it: 344 penguins of three species on three islands of the Palmer Archipelago. The
 * task predicts the species from beak, flipper, mass and sex; the islands are the sources a
 * federated split follows (Torgersen has only Adelie penguins, Dream adds Chinstrap, Biscoe
 * Gentoo), the way field stations would each hold their own records.
 */

export const PENGUINS_FILE = 'penguins.json';
export const PENGUIN_ISLANDS = ['Biscoe', 'Dream', 'Torgersen'] as const;

export const PENGUINS_SCHEMA: TabularSchema = {
  kind: 'tabular',
  columns: [
    { name: 'Beak Length (mm)', type: 'numeric', min: 30, max: 60 },
    { name: 'Beak Depth (mm)', type: 'numeric', min: 13, max: 22 },
    { name: 'Flipper Length (mm)', type: 'numeric', min: 170, max: 235 },
    { name: 'Body Mass (g)', type: 'numeric', min: 2700, max: 6300 },
    { name: 'Sex', type: 'categorical', categories: ['FEMALE', 'MALE'] },
    { name: 'Species', type: 'categorical', categories: ['Adelie', 'Chinstrap', 'Gentoo'] },
  ],
  label: 'Species',
};

/** Every fifth penguin of each island (in file order) is held out for testing. */
const TEST_EVERY = 5;

/** Penguins with every measurement (11 of the 344 lack one), split into train or test, their island as source. */
export function parsePenguins(bytes: Uint8Array, split: 'train' | 'test'): LabelledSet {
  let rows: Row[];
  try {
    rows = JSON.parse(decodeUtf8(bytes)) as Row[];
  } catch (error) {
    throw new TributaryError('DATA_MALFORMED', `${PENGUINS_FILE}: ${(error as Error).message}`);
  }
  const complete = rows.filter((r) => PENGUINS_SCHEMA.columns.every((c) => r[c.name] !== null && r[c.name] !== undefined && r[c.name] !== '.'));
  const set = encodeRows(PENGUINS_SCHEMA, complete);
  const seen = new Map<string, number>();
  const keep: number[] = [];
  const islands: number[] = [];
  complete.forEach((row, i) => {
    const island = String(row.Island);
    const k = seen.get(island) ?? 0;
    seen.set(island, k + 1);
    if ((k % TEST_EVERY === TEST_EVERY - 1) === (split === 'test')) {
      keep.push(i);
      islands.push(Math.max(0, PENGUIN_ISLANDS.indexOf(island as (typeof PENGUIN_ISLANDS)[number])));
    }
  });
  return { ...selectRows(set, keep), sources: Int32Array.from(islands) };
}
