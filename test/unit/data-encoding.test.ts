import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { decodeShard, encodeShard } from '../../shared/codec/demo-shard.ts';
import { holdOut } from '../../shared/data/dataset.ts';
import { encodeImages, encodeRows, encodeText, tokenize } from '../../shared/data/encode.ts';
import { partitionIndices } from '../../shared/data/partition.ts';
import { checkDataSchema, featureCount, inputShapeOf, outputUnitsOf, targetOf, type TabularSchema, type TextSchema } from '../../shared/data/schema.ts';
import { aucFromHistograms, AUC_BINS, objectiveOf } from '../../shared/ml/objective.ts';

const TABLE: TabularSchema = {
  kind: 'tabular',
  columns: [
    { name: 'age', type: 'numeric', min: 0, max: 100 },
    { name: 'colour', type: 'categorical', categories: ['red', 'green', 'blue'] },
    { name: 'bought', type: 'categorical', categories: ['no', 'yes'] },
  ],
  label: 'bought',
};
const TEXT: TextSchema = { kind: 'text', tokenizer: 'char', vocabulary: 'abc ', sequenceLength: 3, stride: 2 };

const codeOf = (f: () => unknown) => {
  try {
    f();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
};

describe('data schemas and the encoding devices apply', () => {
  it('derives target, features and shapes from the schema', () => {
    expect(targetOf(TABLE)).toBe('binary');
    expect(featureCount(TABLE)).toBe(4); // age + 3 one-hot colours
    expect(outputUnitsOf(TABLE)).toBe(1);
    expect(targetOf({ ...TABLE, label: 'age' })).toBe('regression');
    expect(targetOf({ ...TABLE, label: 'colour' })).toBe('multiclass');
    expect(inputShapeOf(TEXT)).toEqual([3, 5]); // one-hot over the vocabulary and the unknown token
  });

  it('refuses a schema that contradicts itself', () => {
    expect(codeOf(() => checkDataSchema({ ...TABLE, label: 'price' }))).toBe('SCHEMA_INVALID');
    expect(codeOf(() => checkDataSchema({ ...TABLE, columns: [{ name: 'age', type: 'numeric', min: 5, max: 5 }, TABLE.columns[2]!] }))).toBe('SCHEMA_INVALID');
    expect(codeOf(() => checkDataSchema({ ...TEXT, vocabulary: 'aab' }))).toBe('SCHEMA_INVALID');
  });

  it('scales numeric columns by their declared range (clamped), one-hot encodes categories, and indexes labels', () => {
    const set = encodeRows(TABLE, [{ age: '25', colour: 'blue', bought: 'yes' }, { age: 150, colour: 'red', bought: 'no' }]);
    expect([...set.x]).toEqual([0.25, 0, 0, 1, 1, 1, 0, 0]);
    expect([...set.y]).toEqual([1, 0]);
  });

  it('names the first bad row: a missing column, a value that is no number, an unknown category, no rows', () => {
    expect(codeOf(() => encodeRows(TABLE, [{ age: 1, bought: 'no' }]))).toBe('DATA_COLUMNS_MISSING');
    expect(() => encodeRows(TABLE, [{ age: 1, colour: 'red', bought: 'no' }, { age: 'old', colour: 'red', bought: 'no' }])).toThrow(/row 2, column "age": "old" is not a number/);
    expect(codeOf(() => encodeRows(TABLE, [{ age: '', colour: 'red', bought: 'no' }]))).toBe('DATA_VALUE_INVALID');
    expect(() => encodeRows(TABLE, [{ age: 3, colour: 'pink', bought: 'no' }])).toThrow(/"pink" is not one of red, green, blue/);
    expect(codeOf(() => encodeRows(TABLE, []))).toBe('DATA_EMPTY');
  });

  it('cuts text into windows `stride` apart, each predicting the next character; unknown characters are token 0', () => {
    expect([...tokenize(TEXT, 'ab?')]).toEqual([1, 2, 0]);
    const set = encodeText(TEXT, 'abcab c');
    expect(set.n).toBe(2);
    expect([...set.x]).toEqual([1, 2, 3, 3, 1, 2]);
    expect([...set.y]).toEqual([1, 4]);
    expect(codeOf(() => encodeText(TEXT, 'abc'))).toBe('DATA_EMPTY');
  });

  it('refuses an image of the wrong size and a label outside the schema', () => {
    const schema = { kind: 'image', height: 2, width: 2, channels: 1, labels: ['a', 'b'] } as const;
    expect(encodeImages({ ...schema, labels: ['a', 'b'] }, [{ pixels: [0, 255, 51, 102], label: 'b' }]).x[1]).toBe(1);
    expect(codeOf(() => encodeImages({ ...schema, labels: ['a', 'b'] }, [{ pixels: [0, 1, 2], label: 0 }]))).toBe('DATA_WRONG_SHAPE');
    expect(codeOf(() => encodeImages({ ...schema, labels: ['a', 'b'] }, [{ pixels: [0, 1, 2, 3], label: 'c' }]))).toBe('DATA_VALUE_INVALID');
  });

  it('splits by source without mixing sources, shards in proportion to their sizes', () => {
    const sources = [...new Array(60).fill(0), ...new Array(30).fill(1), ...new Array(10).fill(2)];
    const shards = partitionIndices(new Array(100).fill(0), 1, 10, { kind: 'source' }, 1, sources);
    expect(shards.map((s) => s.length).reduce((a, b) => a + b)).toBe(100);
    for (const shard of shards) expect(new Set(shard.map((i) => sources[i])).size).toBe(1);
    expect(shards.map((s) => sources[s[0]!])).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 1, 2]);
  });

  it('holds out a seeded fraction that training never sees', () => {
    const set = encodeRows(TABLE, Array.from({ length: 50 }, (_, i) => ({ age: i, colour: 'red', bought: i % 2 ? 'yes' : 'no' })));
    const { train, test } = holdOut(set, 0.2, 9);
    expect(test!.n).toBe(10);
    expect(train.n).toBe(40);
    const ages = (s: typeof set) => Array.from({ length: s.n }, (_, i) => s.x[i * s.features]);
    expect(new Set([...ages(train), ...ages(test!)]).size).toBe(50);
    expect(ages(holdOut(set, 0.2, 9).test!)).toEqual(ages(test!));
  });

  it('carries float features and regression targets through a demo shard without loss, pixels as bytes', () => {
    const regression = encodeRows({ ...TABLE, label: 'age' }, [{ age: 33.3, colour: 'green', bought: 'yes' }]);
    const back = decodeShard(encodeShard(regression));
    expect([...back.x]).toEqual([...regression.x]);
    expect(back.y).toBeInstanceOf(Float32Array);
    expect([...back.y]).toEqual([...regression.y]);
    const pixels = encodeImages({ kind: 'image', height: 1, width: 2, channels: 1, labels: ['a', 'b'] }, [{ pixels: [3, 250], label: 1 }]);
    const bytes = encodeShard(pixels);
    expect(bytes.length).toBe(16 + 2 + 4);
    expect([...decodeShard(bytes).x]).toEqual([...pixels.x]);
  });

  it('scores a binary task by accuracy and by the AUC of its score histograms', async () => {
    // Hand example: positives score 0.9 and 0.4, negatives 0.1 and 0.4: pairs (0.9>0.1, 0.9>0.4, 0.4>0.1, 0.4=0.4) → (1+1+1+0.5)/4.
    const objective = objectiveOf(TABLE);
    const sums = tf.tidy(() => {
      const outputs = tf.tensor2d([[0.9], [0.4], [0.1], [0.4]]);
      const labels = tf.tensor1d([1, 1, 0, 0], 'int32');
      return objective.batchSums(outputs, labels, objective.loss(outputs, labels));
    });
    const metrics = objective.metrics(await sums.data());
    expect(metrics.auc).toBeCloseTo(0.875, 10);
    expect(metrics.accuracy).toBe(0.75); // at 0.5: 0.9, 0.1 and the negative 0.4 right, the positive 0.4 wrong
    expect(aucFromHistograms(new Array(3 + 2 * AUC_BINS).fill(0), 3)).toBeNaN();
  });
});
