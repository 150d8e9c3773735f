import { concatSets, selectRows, type LabelledSet } from './dataset.ts';
import { encodeText } from './encode.ts';
import type { TextSchema } from './schema.ts';

/**
 * Text from Debian's `fortunes` package (the BSD fortune program and its files; the
 * package's copyright file gives BSD terms and no separate licence for the quotations,
 * see the README): one file per topic, entries
 * separated by "%" lines. The task predicts the next character; the topic files are the
 * sources a federated split follows, as people's writing differs by what they write about.
 */

export const FORTUNES_DIR = '/usr/share/games/fortunes';

/** Ten topics, one per demo client. */
export const FORTUNE_TOPICS = ['computers', 'science', 'politics', 'people', 'literature', 'work', 'wisdom', 'law', 'food', 'sports'] as const;

const PRINTABLE = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('');

export const FORTUNES_SCHEMA: TextSchema = { kind: 'text', tokenizer: 'char', vocabulary: `${PRINTABLE}\n`, sequenceLength: 24, stride: 12 };

/** Every tenth fortune of a topic is held out for testing. */
const TEST_EVERY = 10;

/** Entries of a fortune file: the text between "%" lines, tabs as spaces. */
export function fortuneEntries(text: string): string[] {
  return text.replace(/\t/g, ' ').split(/^%$/m).map((e) => e.trim()).filter((e) => e.length > 0);
}

/** One topic's train or test text as next-character samples, each entry followed by a blank line. */
export function encodeFortunes(text: string, split: 'train' | 'test', topic: number): LabelledSet {
  const entries = fortuneEntries(text).filter((_, i) => (i % TEST_EVERY === TEST_EVERY - 1) === (split === 'test'));
  const set = encodeText(FORTUNES_SCHEMA, entries.join('\n\n'));
  return { ...set, sources: new Int32Array(set.n).fill(topic) };
}

/**
 * All topics in one set, their samples interleaved (one of each topic in turn, while it
 * lasts): the first N samples, which a task's trainLimit keeps, then span every topic.
 */
export function joinTopics(sets: readonly LabelledSet[]): LabelledSet {
  const joined = { ...concatSets(sets), sources: Int32Array.from(sets.flatMap((s) => Array.from(s.sources ?? new Int32Array(s.n)))) };
  const starts = sets.map((_, i) => sets.slice(0, i).reduce((a, s) => a + s.n, 0));
  const order: number[] = [];
  for (let k = 0; order.length < joined.n; k++) sets.forEach((s, i) => k < s.n && order.push(starts[i]! + k));
  return selectRows(joined, order);
}
