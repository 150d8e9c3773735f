import { TributaryError } from '../../shared/errors.ts';
import type { Weights } from '../../shared/ml/aggregate.ts';
import type { ModelOutline } from './outline.ts';

/** One tensor of a model.json weights manifest. */
interface ManifestEntry {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: unknown;
}

const malformed = (detail: string) => new TributaryError('MODEL_MALFORMED', detail);
const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** The manifest's tensors in file order; only float32, unquantized (what the round engine trains). */
function manifestEntries(manifest: unknown): ManifestEntry[] {
  if (!Array.isArray(manifest)) throw malformed('weights were uploaded, but model.json has no weightsManifest to say what they hold');
  const entries = manifest.flatMap((group: { weights?: unknown }) => {
    if (!Array.isArray(group?.weights)) throw malformed('a weightsManifest group has no weights list');
    return group.weights as unknown[];
  });
  return entries.map((raw, i) => {
    const entry = raw as Partial<ManifestEntry> | null;
    if (typeof entry?.name !== 'string') throw malformed(`weightsManifest entry ${i + 1} has no name`);
    if (!Array.isArray(entry.shape) || !entry.shape.every((d) => Number.isInteger(d) && d >= 0)) throw malformed(`weight "${entry.name}" has no valid shape`);
    if (entry.quantization !== undefined) throw malformed(`weight "${entry.name}" is quantized; upload float32 weights (convert without --quantize_*)`);
    if (entry.dtype !== 'float32') throw malformed(`weight "${entry.name}" is ${String(entry.dtype)}; only float32 weights are trained`);
    return entry as ManifestEntry;
  });
}

/**
 * The model weight a manifest name belongs to, paired by name as `tf.loadLayersModel`
 * pairs them (by name, not order: Keras writes each layer's weights together, TF.js keeps
 * non-trainable ones last), including its rule for TF ≥ 2.2 names that carry an RNN cell's name.
 */
function pairByName(entries: readonly ManifestEntry[], model: ModelOutline['weights']): Map<ManifestEntry, number> {
  const index = new Map(model.map((w, i) => [w.name, i]));
  const pairs = new Map<ManifestEntry, number>();
  const taken = new Set<number>();
  for (const entry of entries) {
    const parts = entry.name.split('/');
    const i = index.get(entry.name) ?? index.get([...parts.slice(0, -2), parts.at(-1)].join('/'));
    if (i === undefined) throw malformed(`weight "${entry.name}" of the manifest is not in the model, whose weights are ${model.map((w) => `"${w.name}"`).join(', ')}`);
    if (taken.has(i)) throw malformed(`the manifest has two weights for "${model[i]!.name}"`);
    const expected = model[i]!.shape;
    if (shapeText(entry.shape) !== shapeText(expected)) throw malformed(`weight "${entry.name}" is ${shapeText(entry.shape)} in the manifest, ${shapeText(expected)} in the model`);
    taken.add(i);
    pairs.set(entry, i);
  }
  const missing = model.filter((_, i) => !taken.has(i));
  if (missing.length > 0) throw malformed(`the manifest has no values for ${missing.map((w) => `"${w.name}"`).join(', ')}`);
  return pairs;
}

/**
 * Uploaded weight bytes (the manifest's files, concatenated in its order) as the model's
 * weights in its own weight order: the manifest must describe exactly these bytes and
 * exactly the model's weights (MODEL_MALFORMED), and every value be finite
 * (MODEL_WEIGHTS_NOT_FINITE, naming the weight).
 */
export function readUploadedWeights(manifest: unknown, bytes: Uint8Array, model: ModelOutline['weights']): Weights {
  const entries = manifestEntries(manifest);
  const described = entries.reduce((n, e) => n + 4 * sizeOf(e.shape), 0);
  if (described !== bytes.byteLength) throw malformed(`the manifest describes ${described} bytes of float32 weights, but ${bytes.byteLength} bytes were uploaded`);
  const pairs = pairByName(entries, model);
  // Copied into a buffer of their own: the bytes may start at any offset (a Buffer's
  // slice() is no copy but a view of Node's shared pool), a Float32Array needs a multiple of 4.
  const floats = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(floats.buffer).set(bytes);
  const weights: Weights = new Array<Float32Array>(model.length);
  let offset = 0;
  for (const entry of entries) {
    const values = floats.subarray(offset, offset + sizeOf(entry.shape));
    offset += values.length;
    const bad = values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new TributaryError('MODEL_WEIGHTS_NOT_FINITE', `weight "${entry.name}" holds ${values[bad]} at index ${bad}`);
    weights[pairs.get(entry)!] = values;
  }
  return weights;
}
