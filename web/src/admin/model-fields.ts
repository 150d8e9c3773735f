import { h } from './api.ts';
import { TributaryError } from '../../../shared/errors.ts';
import { MODEL_LIMITS, weightPathsOf, type ModelUpload } from '../../../shared/protocol/model-upload.ts';

const MiB = 1024 * 1024;

/** The "Upload TF.js model" fields: model.json and its weight files, read here and sent in the create-task body. */
export interface ModelFields {
  readonly element: HTMLElement;
  /** The upload the chosen files make; a problem the server would refuse is thrown with the server's code. */
  read(): Promise<ModelUpload>;
}

function fileInput(label: string, name: string, attrs: Record<string, string | boolean>): { field: HTMLElement; input: HTMLInputElement } {
  const input = h('input', { id: `t-${name}`, name, type: 'file', ...attrs });
  return { field: h('div', {}, h('label', { for: `t-${name}` }, label), input), input };
}

/** A file's bytes as base64, encoded by the browser (FileReader), not through a string of 64 MiB of characters. */
function base64Of(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      resolve(url.slice(url.indexOf(',') + 1));
    };
    reader.onerror = () => reject(reader.error ?? new Error('the weights could not be read'));
    reader.readAsDataURL(blob);
  });
}

/** The chosen weight files in the order model.json's manifest lists them (the converter shards weights into several). */
function inManifestOrder(modelJson: unknown, chosen: File[]): File[] {
  const paths = weightPathsOf(modelJson);
  if (chosen.length <= 1) return chosen;
  const byName = new Map(chosen.map((f) => [f.name, f]));
  const ordered = paths.map((p) => byName.get(p.split('/').at(-1)!));
  if (ordered.length !== chosen.length || ordered.some((f) => f === undefined)) {
    throw new TributaryError('MODEL_MALFORMED', `choose the weight files model.json lists: ${paths.join(', ') || 'none'}`);
  }
  return ordered as File[];
}

export function modelFields(): ModelFields {
  const json = fileInput('model.json', 'model-json', { accept: '.json,application/json' });
  const weights = fileInput('Weights (weights.bin, or every shard model.json lists)', 'model-weights', { accept: '.bin,application/octet-stream', multiple: true });
  const element = h('div', { class: 'full-row', id: 'model-upload' },
    h('div', { class: 'row' }, json.field, weights.field),
    h('p', { class: 'hint' }, `A TF.js Layers model, as tensorflowjs_converter or model.save() writes it: model.json up to ${MODEL_LIMITS.modelJsonBytes / MiB} MiB, weights up to ${MODEL_LIMITS.weightsBytes / MiB} MiB, ${MODEL_LIMITS.parameters / 1e6} million parameters, layers TF.js ships. Without weights it starts from its initializers.`));
  return {
    element,
    async read() {
      const file = json.input.files?.[0];
      if (!file) throw new TributaryError('MODEL_MALFORMED', 'choose the model.json to upload');
      if (file.size > MODEL_LIMITS.modelJsonBytes) throw new TributaryError('MODEL_TOO_LARGE', `${file.name} is ${file.size} bytes; at most ${MODEL_LIMITS.modelJsonBytes / MiB} MiB`);
      let modelJson: unknown;
      try {
        modelJson = JSON.parse(await file.text());
      } catch (error) {
        throw new TributaryError('MODEL_MALFORMED', `${file.name} is not JSON: ${(error as Error).message}`);
      }
      if (!modelJson || typeof modelJson !== 'object' || Array.isArray(modelJson)) throw new TributaryError('MODEL_MALFORMED', `${file.name} is not a model.json object`);
      const chosen = inManifestOrder(modelJson, [...(weights.input.files ?? [])]);
      const size = chosen.reduce((n, f) => n + f.size, 0);
      if (size > MODEL_LIMITS.weightsBytes) throw new TributaryError('MODEL_TOO_LARGE', `the weights are ${size} bytes; at most ${MODEL_LIMITS.weightsBytes / MiB} MiB`);
      const upload: ModelUpload = { kind: 'layers', modelJson: modelJson as Record<string, unknown> };
      return chosen.length === 0 ? upload : { ...upload, weights: await base64Of(new Blob(chosen)) };
    },
  };
}
