import { aggregationFields } from './aggregation-fields.ts';
import { api, h } from './api.ts';
import { checkbox, choices, input, select } from './fields.ts';
import { privacyFields } from './privacy-fields.ts';
import { choicesOf, ModelPreset, StrategyName, TASK_DEFAULTS, TrainingMode, UpdateBits, type TaskSpecInput } from '../../../shared/protocol/task.ts';

/** How the form names each choice the schema allows: a new value without a label fails the type check. */
const MODEL_LABELS: Record<ModelPreset, string> = { 'fmnist-mlp': 'MLP (784-200-200-10)', 'fmnist-cnn': 'CNN (2 conv layers)' };
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
  const form = h('form', { class: 'panel', 'aria-label': 'New task' },
    h('h2', {}, 'New task'),
    h('div', { class: 'row' },
      input('Name', 'name', { value: 'Fashion-MNIST demo', required: true, maxlength: '120' }),
      select('Model', 'model', choices(choicesOf(ModelPreset), (m) => MODEL_LABELS[m]), TASK_DEFAULTS.model),
      select('Demo data partition', 'partition', [['iid', 'IID'], ['dirichlet:0.5', 'Dirichlet 0.5 (label skew)'], ['dirichlet:0.1', 'Dirichlet 0.1 (strong skew)']], 'iid'),
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
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    try {
      created(await api<TaskRecord>('POST', '/api/tasks', readSpec(new FormData(form), aggregation, privacy)));
    } catch (e) {
      error.textContent = (e as Error).message;
    }
  });
  return form;
}

/** The create-task request the form's fields describe. */
function readSpec(f: FormData, aggregation: { read(f: FormData): TaskSpecInput['aggregation'] }, privacy: { read(f: FormData): TaskSpecInput['privacy'] }): TaskSpecInput {
  const num = (key: string) => Number(f.get(key));
  const [kind, alpha] = String(f.get('partition')).split(':');
  return {
    name: String(f.get('name')),
    model: String(f.get('model')) as ModelPreset,
    partition: kind === 'dirichlet' ? { kind, alpha: Number(alpha) } : { kind: 'iid' },
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
