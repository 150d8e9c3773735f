import { readCsvFile, readImageFolder, readTextFile, type ImageReading, type LocalReading, type TableReading, type TextReading } from '../../client/browser/sdk.ts';
import type { LabelledSet } from '../../shared/data/dataset.ts';
import type { DataSchema, ImageSchema, TabularSchema } from '../../shared/data/schema.ts';
import { h } from './admin/api.ts';

/**
 * The contribute page's picker for the person's own data, by the task's schema: a CSV file
 * for tables, a folder of per-label subfolders for images, a text file for text. It reads
 * the files in this browser, shows a preview, how many samples are valid and the first that
 * are not, and hands the valid samples on each time the person chooses to train on them.
 */

const INPUTS = { tabular: 'own-csv', image: 'own-folder', text: 'own-text' } as const;
const THUMBNAILS_PER_LABEL = 4;

const element = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const plural = (n: number, noun: string) => `${n.toLocaleString()} ${noun}${n === 1 ? '' : 's'}`;

/** Shows the picker for the task's kind of data; returns its file input. */
export function showDataPicker(schema: DataSchema, use: (set: LabelledSet) => void): HTMLInputElement {
  element('own-data').classList.remove('hidden');
  element('own-intro').textContent = introOf(schema);
  for (const block of element('own-data').querySelectorAll<HTMLElement>('[data-kind]')) block.classList.toggle('hidden', block.dataset.kind !== schema.kind);
  const input = element<HTMLInputElement>(INPUTS[schema.kind]);
  const button = element<HTMLButtonElement>('own-use');
  let chosen: LabelledSet | undefined;
  let shown = NOTHING_SHOWN;
  let picks = 0;
  input.addEventListener('change', async () => {
    const files = [...(input.files ?? [])];
    if (files.length === 0) return;
    // A later pick wins over a reading still under way.
    const pick = ++picks;
    chosen = undefined;
    button.disabled = true;
    shown.release();
    shown = NOTHING_SHOWN;
    element('own-count').textContent = 'Reading…';
    element('own-error').textContent = '';
    element('own-problems').replaceChildren();
    try {
      const next = await read(schema, files);
      if (pick !== picks) return next.release();
      shown = next;
      showCount(shown);
      chosen = shown.reading.set;
      button.disabled = !chosen;
    } catch (error) {
      if (pick !== picks) return;
      element('own-count').textContent = '';
      element('own-error').textContent = (error as Error).message;
    }
    element('own-preview').replaceChildren(...shown.preview);
  });
  button.addEventListener('click', () => {
    if (!chosen) return;
    button.disabled = true;
    use(chosen);
  });
  return input;
}

function introOf(schema: DataSchema): string {
  switch (schema.kind) {
    case 'tabular': {
      const columns = schema.columns.map((c) => `${c.name} (${c.type === 'numeric' ? 'a number' : c.categories.join(', ')})`);
      return `Pick a CSV file with the columns ${columns.join('; ')}. The model learns to predict ${schema.label}. Rows that do not fit are left out.`;
    }
    case 'image':
      return `Pick a folder with one subfolder per label, named ${schema.labels.join(', ')} (or 0–${schema.labels.length - 1}), of PNG or JPEG images. They are resized to ${schema.width}×${schema.height} ${schema.channels === 1 ? 'grey' : 'colour'} pixels.`;
    case 'text':
      return `Pick a UTF-8 text file. The model learns to predict each character from the ${schema.sequenceLength} before it.`;
  }
}

/** What a reading puts on the page, and how to let go of it (thumbnails hold object URLs). */
interface Shown {
  reading: LocalReading;
  /** Says what the valid samples were counted among. */
  among: string;
  preview: Node[];
  release(): void;
}

const NOTHING_SHOWN: Shown = { reading: { set: undefined, total: 0, rejected: 0, problems: [] }, among: '', preview: [], release: () => undefined };

async function read(schema: DataSchema, files: File[]): Promise<Shown> {
  const release = () => undefined;
  switch (schema.kind) {
    case 'tabular': {
      const reading = await readCsvFile(files[0]!, schema);
      return { reading, among: `of ${plural(reading.total, 'row')}`, preview: [tablePreview(schema, reading)], release };
    }
    case 'image': {
      const reading = await readImageFolder(files, schema);
      return { reading, among: `of ${plural(reading.total, 'image')}`, ...thumbnails(schema, reading) };
    }
    case 'text': {
      const reading = await readTextFile(files[0]!, schema);
      const unknown = reading.unknown > 0 ? `, ${plural(reading.unknown, 'character')} outside the vocabulary` : '';
      return { reading, among: `(windows of ${schema.sequenceLength} characters) from ${plural(reading.characters, 'character')}${unknown}`, preview: [textPreview(reading)], release };
    }
  }
}

/** The count of valid samples and the first problems. */
function showCount({ reading, among }: Shown): void {
  const leftOut = reading.rejected > 0 ? `; ${reading.rejected.toLocaleString()} left out` : '';
  element('own-count').textContent = `${plural(reading.set?.n ?? 0, 'valid sample')} ${among}${leftOut}.`;
  const more = reading.rejected - reading.problems.length;
  element('own-problems').replaceChildren(...reading.problems.map((p) => h('li', {}, p)), ...(more > 0 ? [h('li', {}, `… and ${more.toLocaleString()} more`)] : []));
}

function tablePreview(schema: TabularSchema, reading: TableReading): HTMLElement {
  const names = schema.columns.map((c) => c.name);
  return h('table', {},
    h('caption', { class: 'muted' }, 'The first rows of the file'),
    h('thead', {}, h('tr', {}, h('th', {}, 'Row'), ...names.map((n) => h('th', {}, n)))),
    h('tbody', {}, ...reading.preview.map(({ row, cells, valid }) => h('tr', {},
      h('td', {}, String(row), ...(valid ? [] : [' ', h('span', { class: 'badge bad' }, 'left out')])),
      ...names.map((n) => h('td', {}, String(cells[n] ?? ''))),
    ))),
  );
}

function thumbnails(schema: ImageSchema, reading: ImageReading): Pick<Shown, 'preview' | 'release'> {
  const urls: string[] = [];
  const perLabel = new Map<number, number>();
  const figures = reading.images.filter(({ label }) => {
    perLabel.set(label, (perLabel.get(label) ?? 0) + 1);
    return perLabel.get(label)! <= THUMBNAILS_PER_LABEL;
  }).map(({ file, label }) => {
    const url = URL.createObjectURL(file);
    urls.push(url);
    const name = schema.labels[label]!;
    return h('figure', {}, h('img', { src: url, width: '56', height: '56', alt: `${name}: ${file.name}` }), h('figcaption', { class: 'muted' }, name));
  });
  return { preview: [h('div', { class: 'actions', role: 'group', 'aria-label': 'Some of the images, with their labels' }, ...figures)], release: () => urls.forEach((u) => URL.revokeObjectURL(u)) };
}

function textPreview(reading: TextReading): HTMLElement {
  return h('figure', {}, h('figcaption', { class: 'muted' }, 'The beginning of the text'), h('pre', { class: 'panel', style: 'white-space: pre-wrap' }, reading.preview));
}
