import { TributaryError } from '../errors.ts';
import type { ModelSpec } from '../ml/model-spec.ts';
import type { LabelledSet } from './dataset.ts';
import { FASHION_MNIST_DIR, FASHION_MNIST_SCHEMA, loadFashionMnist } from './fashion-mnist.ts';
import { encodeFortunes, FORTUNE_TOPICS, FORTUNES_DIR, FORTUNES_SCHEMA, joinTopics } from './fortunes.ts';
import { parsePenguins, PENGUINS_FILE, PENGUINS_SCHEMA } from './penguins.ts';
import type { DataSchema } from './schema.ts';
import { decodeUtf8 } from '../text.ts';

/**
 * The built-in tasks: real data that a package installs (never a download at run time),
 * each with its schema, a model that suits it and the settings it trains well with. The
 * only place outside their own modules that names these data sets.
 */

/** Reads a data set's file by name (decompressed), or undefined when it is missing: disk in Node, a fetch elsewhere. */
export type FileSource = (name: string) => Promise<Uint8Array | undefined>;

export type Split = 'train' | 'test';

export interface BuiltinDataset {
  title: string;
  /** Where it comes from and under what licence (for the README and the model card). */
  origin: string;
  /** Where the package puts its files: a folder, or `npm:<package>/<folder>`. */
  defaultDir: string;
  /** What to install when the files are missing. */
  install: string;
  schema: DataSchema;
  model: ModelSpec;
  /** Task settings it trains well with (merged under the user's own). */
  defaults: {
    partition: { kind: 'iid' } | { kind: 'source' };
    shards: number;
    hyper: { localEpochs: number; batchSize: number; learningRate: number; optimizer: 'sgd' | 'momentum' | 'adam' };
  };
  load(files: FileSource, split: Split): Promise<LabelledSet>;
}

async function required(files: FileSource, name: string, install: string): Promise<Uint8Array> {
  const bytes = await files(name);
  if (!bytes) throw new TributaryError('DATA_NOT_FOUND', `${name} (${install})`);
  return bytes;
}

export const BUILTIN_DATASETS = {
  'fashion-mnist': {
    title: 'Fashion-MNIST: 28×28 grey images of clothing, 10 classes',
    origin: "Zalando Research, MIT licence; Debian's dataset-fashion-mnist",
    defaultDir: FASHION_MNIST_DIR,
    install: "install Debian's dataset-fashion-mnist",
    schema: FASHION_MNIST_SCHEMA,
    model: { kind: 'mlp', hidden: [200, 200] },
    defaults: { partition: { kind: 'iid' }, shards: 10, hyper: { localEpochs: 1, batchSize: 64, learningRate: 0.02, optimizer: 'momentum' } },
    load: (files, split) => loadFashionMnist(files, split === 'train' ? 'train' : 't10k'),
  },
  penguins: {
    title: 'Palmer Penguins: species from beak, flipper, mass and sex; split by island',
    origin: 'Gorman, Williams & Fraser (2014), CC0; the npm package vega-datasets (BSD-3-Clause)',
    defaultDir: 'npm:vega-datasets/data',
    install: 'npm install (vega-datasets is a dependency)',
    schema: PENGUINS_SCHEMA,
    model: { kind: 'mlp', hidden: [128, 64] },
    defaults: { partition: { kind: 'source' }, shards: 10, hyper: { localEpochs: 2, batchSize: 8, learningRate: 0.02, optimizer: 'adam' } },
    load: async (files, split) => parsePenguins(await required(files, PENGUINS_FILE, 'npm install'), split),
  },
  fortunes: {
    title: "Fortunes: next-character prediction over Debian's fortune files; split by topic",
    origin: "Debian's fortunes package (BSD fortune files; /usr/share/doc/fortunes/copyright)",
    defaultDir: FORTUNES_DIR,
    install: "install Debian's fortunes",
    schema: FORTUNES_SCHEMA,
    model: { kind: 'gru', embedding: 16, units: 64 },
    defaults: { partition: { kind: 'source' }, shards: 10, hyper: { localEpochs: 1, batchSize: 64, learningRate: 0.005, optimizer: 'adam' } },
    load: async (files, split) => {
      const texts = await Promise.all(FORTUNE_TOPICS.map((topic) => required(files, topic, "install Debian's fortunes")));
      return joinTopics(texts.map((bytes, topic) => encodeFortunes(decodeUtf8(bytes), split, topic)));
    },
  },
} as const satisfies Record<string, BuiltinDataset>;

export type BuiltinName = keyof typeof BUILTIN_DATASETS;
export const BUILTIN_NAMES = Object.keys(BUILTIN_DATASETS) as BuiltinName[];

export function isBuiltin(name: string): name is BuiltinName {
  return Object.hasOwn(BUILTIN_DATASETS, name);
}

export function builtinDataset(name: string): BuiltinDataset {
  if (!isBuiltin(name)) throw new TributaryError('DATA_NOT_FOUND', `no built-in data set "${name}": one of ${BUILTIN_NAMES.join(', ')}`);
  return BUILTIN_DATASETS[name];
}

/** The task the demo runs by default. */
export const DEFAULT_DATASET: BuiltinName = 'fashion-mnist';

/** The model presets tasks named before models were described by architecture (the default task's MLP and CNN). */
export const LEGACY_PRESETS: Record<string, ModelSpec> = {
  'fmnist-mlp': { kind: 'mlp', hidden: [200, 200] },
  'fmnist-cnn': { kind: 'cnn', filters: [16, 32], dense: 64 },
};
