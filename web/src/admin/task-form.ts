import { aggregationFields } from './aggregation-fields.ts';
import { api, h } from './api.ts';
import { checkbox, choices, input, select, showField } from './fields.ts';
import { modelFields, type ModelFields } from './model-fields.ts';
import { privacyFields } from './privacy-fields.ts';
import { DEFAULT_MODELS, MODEL_KINDS } from '../../../shared/ml/model-spec.ts';
import { BUILTIN_DATASETS, BUILTIN_NAMES, DEFAULT_DATASET } from '../../../shared/data/builtin.ts';
import { TributaryError } from '../../../shared/errors.ts';
import { choicesOf, OWN_DATA, StrategyName, TASK_DEFAULTS, TrainingMode, UpdateBits, type TaskSpecInput } from '../../../shared/protocol/task.ts';

/** How the form names each choice the schema allows: a new value without a label fails the type check. */
const MODEL_LABELS: Record<(typeof MODEL_KINDS)[number], string> = { mlp: 'MLP (dense layers)', cnn: 'CNN (2 conv layers, images)', gru: 'GRU (text)' };
/** Model choices besides the built-in architectures: the data set's own (the server fills it in) and an upload. */
const DATASET_MODEL = 'dataset';
const UPLOAD = 'upload';
const MODEL_CHOICES: Array<[string, string]> = [[DATASET_MODEL, "The data set's own"], ...choices([...MODEL_KINDS], (m) => MODEL_LABELS[m]), [UPLOAD, 'Upload TF.js model']];
const DATA_CHOICES: Array<[string, string]> = [...BUILTIN_NAMES.map((n): [string, string] => [n, BUILTIN_DATASETS[n].title]), [OWN_DATA, 'Own data (schema JSON)']];
const SCHEMA_EXAMPLE = '{"kind":"tabular","columns":[{"name":"age","type":"numeric","min":0,"max":100},{"name":"churned","type":"categorical","categories":["no","yes"]}],"label":"churned"}';
const STRATEGY_LABELS: Record<StrategyName, string> = { fedavg: 'FedAvg', fedavgm: 'FedAvgM', fedadam: 'FedAdam', fedyogi: 'FedYogi' };
const MODE_LABELS: Record<TrainingMode, string> = { sync: 'Sync rounds', async: 'Async (FedBuff)' };
const bitsLabel = (bits: UpdateBits) => (bits === 32 ? '32 (float)' : String(bits));

interface TaskRecord {
  id: number;
}

/**
 * The new-task form: the demo's defaults up front, then how updates are combined and kept
 * private (both follow the secure-aggregation checkbox), the rest under "More settings".
 */
export function taskForm(created: (task: TaskRecord) => void): HTMLElement {
  const error = h('p', { class: 'error', role: 'alert' });
  const aggregation = aggregationFields();
  const privacy = privacyFields();
  const upload = modelFields();
  const schemaField = h('div', { class: 'full-row' },
    h('label', { for: 't-schema' }, 'Data schema (JSON: image, tabular or text)'),
    h('textarea', { id: 't-schema', name: 'schema', rows: '4', placeholder: SCHEMA_EXAMPLE }));
  const partitionField = select('Demo data partition', 'partition', [['', "The data set's own"], ['iid', 'IID'], ['dirichlet:0.5', 'Dirichlet 0.5 (label skew)'], ['dirichlet:0.1', 'Dirichlet 0.1 (strong skew)']], '');
  const form = h('form', { class: 'panel', 'aria-label': 'New task' },
    h('h2', {}, 'New task'),
    h('div', { class: 'row' },
      input('Name', 'name', { value: `${DEFAULT_DATASET} demo`, required: true, maxlength: '120' }),
      select('Data', 'dataset', DATA_CHOICES, DEFAULT_DATASET),
      select('Model', 'model', MODEL_CHOICES, DATASET_MODEL),
      partitionField,
      schemaField,
      upload.element,
      input('Rounds', 'rounds', { type: 'number', min: '1', value: '10', required: true }),
      input('Clients per round', 'clientsPerRound', { type: 'number', min: '1', value: '3', required: true }),
      input('Round deadline (s)', 'deadline', { type: 'number', min: '1', value: '120', required: true }),
      select('Update bits', 'bits', choices(choicesOf(UpdateBits), bitsLabel), String(TASK_DEFAULTS.bits)),
      select('Strategy', 'strategy', choices(choicesOf(StrategyName), (v) => STRATEGY_LABELS[v]), TASK_DEFAULTS.strategy),
    ),
    h('div', { class: 'row' },
      checkbox('Secure aggregation (the server learns only the sum)', 'secure'),
      checkbox('Open enrollment (anyone may contribute from /contribute)', 'openEnrollment', true),
    ),
    aggregation.element,
    privacy.element,
    h('details', {},
      h('summary', {}, 'More settings'),
      h('div', { class: 'row' },
        input('Demo data shards', 'shards', { type: 'number', min: '1', value: '3' }),
        input('Fewest updates a round may close with', 'minUpdates', { type: 'number', min: '1', value: '1' }),
        select('Mode', 'mode', choices(choicesOf(TrainingMode), (v) => MODE_LABELS[v]), TASK_DEFAULTS.mode),
        input('Async buffer size (0: auto)', 'bufferSize', { type: 'number', min: '0', value: '0' }),
        input('Secure threshold (0: auto)', 'threshold', { type: 'number', min: '0', value: '0' }),
        input('Secure neighbours (0: auto)', 'neighbours', { type: 'number', min: '0', value: '0' }),
        input('Local epochs', 'localEpochs', { type: 'number', min: '1', value: '1' }),
        input('Batch size', 'batchSize', { type: 'number', min: '1', value: '64' }),
        input('Learning rate', 'learningRate', { type: 'number', min: '0', step: 'any', value: '0.02' }),
        input('Training images used (0: all)', 'trainLimit', { type: 'number', min: '0', value: '0' }),
        input('Test images evaluated (0: all)', 'testLimit', { type: 'number', min: '0', value: '0' }),
        input('Seed', 'seed', { type: 'number', min: '0', value: '1' }),
      )),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create task')),
    error);
  const secure = form.querySelector<HTMLInputElement>('#t-secure')!;
  const secureChanged = () => {
    aggregation.secureChanged(secure.checked);
    privacy.secureChanged(secure.checked);
  };
  secure.addEventListener('change', secureChanged);
  secureChanged();
  followDataAndModel(form, { schemaField, partitionField, upload: upload.element });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    try {
      const f = new FormData(form);
      created(await api<TaskRecord>('POST', '/api/tasks', { ...readSpec(f, aggregation, privacy), ...(await readDataAndModel(f, upload)) }));
    } catch (e) {
      // The server's code too, so a refused upload says which check it failed (docs/errors.md).
      error.textContent = e instanceof TributaryError ? `${e.code}: ${e.message}` : (e as Error).message;
    }
  });
  return form;
}

/**
 * Own data shows the schema box and hides the demo partition (and the data set's own
 * model, which it has none of); an upload shows the file fields.
 */
function followDataAndModel(form: HTMLFormElement, fields: { schemaField: HTMLElement; partitionField: HTMLElement; upload: HTMLElement }): void {
  const dataset = form.querySelector<HTMLSelectElement>('#t-dataset')!;
  const model = form.querySelector<HTMLSelectElement>('#t-model')!;
  const follow = () => {
    const own = dataset.value === OWN_DATA;
    const datasetModel = [...model.options].find((o) => o.value === DATASET_MODEL)!;
    datasetModel.disabled = own;
    if (own && model.value === DATASET_MODEL) model.value = 'mlp';
    fields.schemaField.hidden = !own;
    showField(fields.partitionField, !own);
    showField(fields.upload, model.value === UPLOAD);
  };
  dataset.addEventListener('change', follow);
  model.addEventListener('change', follow);
  follow();
}

/** The data (a built-in set, or the pasted schema) and the model (omitted: the data set's own) the form describes. */
async function readDataAndModel(f: FormData, upload: ModelFields): Promise<TaskSpecInput> {
  const dataset = String(f.get('dataset'));
  const model = String(f.get('model'));
  let data: TaskSpecInput = { dataset };
  if (dataset === OWN_DATA) {
    try {
      data = { dataset, data: JSON.parse(String(f.get('schema'))) as TaskSpecInput['data'] };
    } catch (e) {
      throw new TributaryError('BAD_REQUEST', `the data schema is not JSON: ${(e as Error).message}`);
    }
  }
  if (model === DATASET_MODEL) return data;
  return { ...data, model: model === UPLOAD ? await upload.read() : DEFAULT_MODELS[model as (typeof MODEL_KINDS)[number]] };
}

/** The create-task request the form's fields describe. */
function readSpec(f: FormData, aggregation: { read(f: FormData): TaskSpecInput['aggregation'] }, privacy: { read(f: FormData): TaskSpecInput['privacy'] }): TaskSpecInput {
  const num = (key: string) => Number(f.get(key));
  // Hidden for own data; empty for the data set's own partition.
  const [kind, alpha] = String(f.get('partition') ?? '').split(':');
  return {
    name: String(f.get('name')),
    ...(kind === 'dirichlet' ? { partition: { kind, alpha: Number(alpha) } } : kind === 'iid' ? { partition: { kind: 'iid' } } : {}),
    shards: num('shards'),
    rounds: num('rounds'),
    clientsPerRound: num('clientsPerRound'),
    minUpdates: Math.min(num('minUpdates'), num('clientsPerRound')),
    roundDeadlineMs: num('deadline') * 1000,
    bits: num('bits') as UpdateBits,
    strategy: String(f.get('strategy')) as StrategyName,
    aggregation: aggregation.read(f),
    privacy: privacy.read(f),
    mode: String(f.get('mode')) as TrainingMode,
    bufferSize: num('bufferSize'),
    secure: f.get('secure') === 'on',
    threshold: num('threshold'),
    neighbours: num('neighbours'),
    openEnrollment: f.get('openEnrollment') === 'on',
    hyper: { localEpochs: num('localEpochs'), batchSize: num('batchSize'), learningRate: num('learningRate'), optimizer: 'momentum', proximalMu: 0 },
    trainLimit: num('trainLimit'),
    testLimit: num('testLimit'),
    seed: num('seed'),
  };
}
