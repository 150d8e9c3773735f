import { splitCsv } from '../../shared/data/csv.ts';
import type { LabelledSet } from '../../shared/data/dataset.ts';
import { decodeShard } from '../../shared/codec/demo-shard.ts';
import { encodeRows, encodeText, labelIndex, tokenize, type Row } from '../../shared/data/encode.ts';
import { errorCatalog, TributaryError } from '../../shared/errors.ts';
import { featureCount, type ImageSchema, type TabularSchema, type TextSchema } from '../../shared/data/schema.ts';
import { getItem, setItem } from './storage.ts';

/*
 * A browser's training data: the demo shard its task assigns, or the person's own files,
 * read the way the edge client (client/node/local-data.ts) reads the same files, so both
 * give the same samples. Where the edge client refuses a file for one bad sample, the
 * readers here leave that sample out and report it: a page shows what it will train on
 * and what it skipped, and the person decides.
 */

/** The task's demo shard for this device, fetched once and kept in IndexedDB. */
export async function demoShardData(server: string, taskId: number, shard: number): Promise<LabelledSet> {
  const url = new URL(`/api/tasks/${taskId}/demo-shard/${shard}`, server).href;
  let bytes = await getItem<Uint8Array>(`shard:${url}`);
  if (!bytes) {
    const response = await fetch(url);
    if (!response.ok) throw new TributaryError('DATA_NOT_FOUND', `demo shard ${shard} of task ${taskId}: HTTP ${response.status}`);
    bytes = new Uint8Array(await response.arrayBuffer());
    await setItem(`shard:${url}`, bytes);
  }
  return decodeShard(bytes);
}

/** Problems described per reading; the rest are only counted. */
const MAX_PROBLEMS = 20;
const PREVIEW_ROWS = 5;
const PREVIEW_CHARACTERS = 400;

/** The person's own file, read by the task's schema: what a page shows before training on it. */
export interface LocalReading {
  /** The valid samples, encoded; undefined when none is valid. */
  set: LabelledSet | undefined;
  /** Samples read, valid or not. */
  total: number;
  /** Samples left out. */
  rejected: number;
  /** Why, for the first MAX_PROBLEMS (20) of them; each names its row, folder or image. */
  problems: string[];
}

export interface TableReading extends LocalReading {
  /** The file's header. */
  columns: string[];
  /** Its first rows (numbered from 1 after the header, as the problems are), valid or not. */
  preview: { row: number; cells: Row; valid: boolean }[];
}

export interface TextReading extends LocalReading {
  characters: number;
  /** Characters outside the schema's vocabulary: they train as the unknown token. */
  unknown: number;
  /** The text's beginning. */
  preview: string;
}

export interface ImageReading extends LocalReading {
  /** The images trained on, in sample order. */
  images: { file: File; label: number }[];
}

/** Samples left out, each counted and the first MAX_PROBLEMS described. */
class Rejections {
  readonly problems: string[] = [];
  count = 0;

  add(problem: string, samples = 1): void {
    this.count += samples;
    if (this.problems.length < MAX_PROBLEMS) this.problems.push(problem);
  }
}

/** An error's detail without its code's general message: a list of problems needs only the detail. */
function detailOf(error: unknown): string {
  if (!(error instanceof TributaryError)) return error instanceof Error ? error.message : String(error);
  const general = `${errorCatalog[error.code].message}: `;
  return error.message.startsWith(general) ? error.message.slice(general.length) : error.message;
}

/** UTF-8 as Node's readFile(path, 'utf8') decodes it: a byte-order mark is kept (papaparse drops it itself). */
async function readUtf8(file: Blob, name: string): Promise<string> {
  const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(await file.arrayBuffer());
  if (text.trim().length === 0) throw new TributaryError('DATA_EMPTY', `${name} is empty`);
  return text;
}

/**
 * A CSV file (a header row, one sample a row) parsed as the edge client parses it. Rows that
 * papaparse cannot split into the header's fields, or whose values do not fit the schema,
 * are left out and reported; a header without the schema's columns refuses the whole file.
 */
export async function readCsvFile(file: File, schema: TabularSchema): Promise<TableReading> {
  const parsed = splitCsv(await readUtf8(file, file.name));
  const columns = parsed.fields;
  const missing = schema.columns.filter((c) => !columns.includes(c.name)).map((c) => `"${c.name}"`);
  if (missing.length > 0) throw new TributaryError('DATA_COLUMNS_MISSING', `${file.name} has no column ${missing.join(', ')} (it has ${columns.map((c) => `"${c}"`).join(', ') || 'none'})`);
  if (parsed.rows.length === 0) throw new TributaryError('DATA_EMPTY', `${file.name} has a header but no rows`);
  // Only field-count errors carry the row they belong to; quote errors surface as such a row or a bad value.
  const fieldErrors = new Map<number, string>();
  for (const e of parsed.errors) if (e.type === 'FieldMismatch' && e.row !== undefined && !fieldErrors.has(e.row)) fieldErrors.set(e.row, e.message);
  const rejections = new Rejections();
  const valid: Row[] = [];
  const preview: TableReading['preview'] = [];
  parsed.rows.forEach((cells, r) => {
    const fieldError = fieldErrors.get(r);
    const problem = fieldError === undefined ? rowProblem(schema, cells, r + 1) : `row ${r + 1}: ${fieldError}`;
    if (problem === undefined) valid.push(cells);
    else rejections.add(problem);
    if (preview.length < PREVIEW_ROWS) preview.push({ row: r + 1, cells, valid: problem === undefined });
  });
  const set = valid.length > 0 ? encodeRows(schema, valid) : undefined;
  return { set, total: parsed.rows.length, rejected: rejections.count, problems: rejections.problems, columns, preview };
}

/** Why a row does not fit the schema, named by its number in the file; undefined if it fits. */
function rowProblem(schema: TabularSchema, cells: Row, row: number): string | undefined {
  try {
    encodeRows(schema, [cells]);
    return undefined;
  } catch (error) {
    // encodeRows numbers the rows it is given, and it was given this one alone.
    return detailOf(error).replace(/^row 1\b/, `row ${row}`);
  }
}

/** A UTF-8 text file as next-character samples, as the edge client reads it. */
export async function readTextFile(file: File, schema: TextSchema): Promise<TextReading> {
  const text = await readUtf8(file, file.name);
  const set = encodeText(schema, text);
  const tokens = tokenize(schema, text);
  return { set, total: set.n, rejected: 0, problems: [], characters: tokens.length, unknown: tokens.filter((t) => t === 0).length, preview: text.slice(0, PREVIEW_CHARACTERS) };
}

const IMAGE_FILE = /\.(png|jpe?g)$/i;
const byName = (a: File, b: File) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * The files of a picked folder (`<input webkitdirectory>`: each has its webkitRelativePath
 * "<folder>/<label>/<name>") read as the edge client reads that folder: PNG and JPEG images
 * directly in one subfolder per label (a label's name or index), in name order. Images of
 * a subfolder that names no label, and images the browser cannot decode, are left out and reported.
 */
export async function readImageFolder(files: readonly File[], schema: ImageSchema): Promise<ImageReading> {
  const folders = new Map<string, File[]>();
  for (const file of files) {
    const [, folder, name, ...deeper] = file.webkitRelativePath.split('/');
    if (!folder || !name || deeper.length > 0 || !IMAGE_FILE.test(name)) continue;
    if (!folders.has(folder)) folders.set(folder, []);
    folders.get(folder)!.push(file);
  }
  const total = [...folders.values()].reduce((n, f) => n + f.length, 0);
  if (total === 0) throw new TributaryError('DATA_EMPTY', `no PNG or JPEG images in per-label subfolders (${schema.labels.join(', ')})`);
  const rejections = new Rejections();
  const candidates: ImageReading['images'] = [];
  for (const folder of [...folders.keys()].sort()) {
    const inFolder = folders.get(folder)!.sort(byName);
    try {
      const label = labelIndex(schema.labels, schema.labels.includes(folder) ? folder : Number(folder), `folder ${folder}`);
      candidates.push(...inFolder.map((file) => ({ file, label })));
    } catch (error) {
      rejections.add(`${detailOf(error)}: its ${inFolder.length} image(s) left out`, inFolder.length);
    }
  }
  const draw = imageSampler(schema);
  const features = featureCount(schema);
  const x = new Float32Array(candidates.length * features);
  const images: ImageReading['images'] = [];
  for (const image of candidates) {
    const name = image.file.webkitRelativePath.split('/').slice(1).join('/');
    try {
      await draw(image.file, name, x.subarray(images.length * features, (images.length + 1) * features));
      images.push(image);
    } catch (error) {
      rejections.add(detailOf(error));
    }
  }
  const n = images.length;
  const set = n > 0 ? { x: x.slice(0, n * features), y: Int32Array.from(images, (i) => i.label), n, features } : undefined;
  return { set, total, rejected: rejections.count, problems: rejections.problems, images };
}

/**
 * Image files as samples of the schema's size: decoded and resized by the browser's own
 * canvas, grey levels (one channel) or RGB, scaled to [0, 1], all with the given label.
 */
export async function imagesToSamples(files: readonly Blob[], label: number, schema: ImageSchema): Promise<LabelledSet> {
  const draw = imageSampler(schema);
  const features = featureCount(schema);
  const x = new Float32Array(files.length * features);
  for (const [i, file] of files.entries()) await draw(file, `image ${i + 1}`, x.subarray(i * features, (i + 1) * features));
  return { x, y: new Int32Array(files.length).fill(label), n: files.length, features };
}

/** Draws one image at the schema's size and writes its features into `out`. */
function imageSampler({ height, width, channels }: ImageSchema): (file: Blob, name: string, out: Float32Array) => Promise<void> {
  const pixels = height * width;
  const context = new OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true });
  if (!context) throw new TributaryError('DATA_MALFORMED', 'no 2D canvas here');
  return async (file, name, out) => {
    const bitmap = await createImageBitmap(file).catch(() => {
      throw new TributaryError('DATA_MALFORMED', `${name} cannot be decoded`);
    });
    context.clearRect(0, 0, width, height);
    context.drawImage(bitmap, 0, 0, width, height);
    bitmap.close();
    const { data } = context.getImageData(0, 0, width, height);
    if (channels === 3) {
      for (let p = 0; p < pixels; p++) for (let c = 0; c < 3; c++) out[p * 3 + c] = data[4 * p + c]! / 255;
      return;
    }
    for (let p = 0; p < pixels; p++) out[p] = (0.299 * data[4 * p]! + 0.587 * data[4 * p + 1]! + 0.114 * data[4 * p + 2]!) / 255;
  };
}
