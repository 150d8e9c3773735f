import { createBrowserClient, demoShardData, type DataProvider, type Enrollment, type FederatedClient } from '../../client/browser/sdk.ts';
import type { LabelledSet } from '../../shared/data/dataset.ts';
import type { DataSchema } from '../../shared/data/schema.ts';
import { OWN_DATA } from '../../shared/protocol/task.ts';
import { showDataPicker } from './data-picker.ts';
import { readInvite } from './invite.ts';

/**
 * The contribute page: consent first, then the best backend that checks out, local data
 * (the person's own files, or the task's demo shard where it has one), and live progress.
 * Consent and identity are remembered, so a reload rejoins; own files are not kept.
 */

const { taskId, token } = readInvite(location);
const consentKey = `tributary:consent:${taskId}`;
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const say = (id: string, text: string) => ($(id).textContent = text);
const percent = (x: number) => `${(x * 100).toFixed(1)} %`;
const SAMPLE_NOUNS: Record<DataSchema['kind'], string> = { tabular: 'rows', image: 'images', text: 'text windows' };

say('task-line', `Task ${taskId}${token ? ', invited with an enrollment token' : ''}.`);

let client: FederatedClient | undefined;
let samplesNoun = 'samples';
/** The person's own samples, once chosen: they replace the demo shard. */
let ownData: LabelledSet | undefined;
/** A task without demo data waits here, in its set-up, for the person's first choice. */
let awaitingOwnData: ((set: LabelledSet) => void) | undefined;
let pickerInput: HTMLInputElement | undefined;

async function start(): Promise<void> {
  localStorage.setItem(consentKey, 'yes');
  $('intro').classList.add('hidden');
  $('work').classList.remove('hidden');
  await join(token ? { token } : 'open');
}

/** A client for this page, its events shown; `enrollment` is left out once this identity is enrolled. */
async function join(enrollment: Enrollment | undefined): Promise<void> {
  say('status', 'Checking this device…');
  const joining = await createBrowserClient({
    server: location.origin,
    taskId,
    ...(enrollment ? { enrollment } : {}),
    onBackend: (choice) => {
      say('backend', `${choice.name}${choice.adapter ? ` (${choice.adapter})` : ''}`);
      $('backend').dataset.backend = choice.name;
      if (choice.relativeError !== undefined) $('backend').dataset.relativeError = String(choice.relativeError);
      const skipped = choice.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
      say('backend-detail', `${Math.round(choice.throughput).toLocaleString()} samples/s${choice.relativeError === undefined ? '' : `, first step within ${choice.relativeError.toExponential(1)} of the CPU's`}${skipped ? `. Passed over — ${skipped}` : ''}`);
    },
    data: localData,
  });
  client = joining;
  showEvents(joining);
  try {
    await joining.start();
  } catch (error) {
    if (joining !== client) return; // replaced by a client with other data
    say('status', 'Could not join');
    say('error', (error as Error).message);
  }
}

/** The set-up's data: the person's own, or the demo shard until they pick theirs; a task without demo data waits for it. */
const localData: DataProvider = async ({ task, shard }) => {
  const schema = task.spec.data;
  samplesNoun = SAMPLE_NOUNS[schema.kind];
  pickerInput ??= showDataPicker(schema, chooseOwnData);
  if (!ownData && task.spec.dataset === OWN_DATA) {
    say('status', 'Waiting for your data');
    say('own-status', 'This task trains only on data its contributors bring: pick yours below, check it, and training starts.');
    pickerInput.focus();
    ownData = await new Promise<LabelledSet>((resolve) => (awaitingOwnData = resolve));
  }
  if (ownData) {
    say('data', `${ownData.n.toLocaleString()} ${samplesNoun}`);
    say('data-detail', 'yours, read in this browser; a part is held out to score the global model');
    say('own-status', `Training on your ${ownData.n.toLocaleString()} samples. Pick other files to switch.`);
    return ownData;
  }
  say('status', 'Loading local data…');
  const demo = await demoShardData(location.origin, task.id, shard ?? 0);
  say('data', `${demo.n.toLocaleString()} ${samplesNoun}`);
  say('data-detail', `demo shard ${shard ?? 0} of ${task.spec.shards}, kept in this browser`);
  say('own-status', "Training on the task's demo data; pick your own to train on it instead.");
  return demo;
};

function chooseOwnData(set: LabelledSet): void {
  if (!client) return; // the person left
  ownData = set;
  if (awaitingOwnData) {
    awaitingOwnData(set);
    awaitingOwnData = undefined;
    return;
  }
  void switchData(client);
}

/** A client sets its data up once: other data takes a new client, which resumes this one's session. */
async function switchData(previous: FederatedClient): Promise<void> {
  const paused = previous.isPaused;
  previous.removeAllListeners();
  previous.stop();
  say('local', 'Switched to your data; a round in progress was given up.');
  await join(undefined);
  if (paused) await client?.pause();
}

function showEvents(c: FederatedClient): void {
  c.on('joined', (e) => {
    say('status', e.resumed ? 'Back in the task' : 'Waiting for a round');
    say('fingerprint', e.serverFingerprint);
    document.title = `Contributing to ${e.task.spec.name} · Tributary`;
  });
  c.on('round-start', (e) => {
    say('status', `Training round ${e.round}`);
    ($('progress') as HTMLProgressElement).value = 0;
  });
  c.on('progress', (e) => {
    ($('progress') as HTMLProgressElement).value = e.fraction;
    if (e.fraction >= 1) say('status', `Sending round ${e.round}`);
  });
  c.on('uploaded', (e) => {
    say('status', 'Update sent; waiting for the next round');
    say('local', `Round ${e.round}: local ${e.train.metrics.accuracy === undefined ? '' : `accuracy ${percent(e.train.metrics.accuracy)}, `}loss ${e.train.loss.toFixed(3)} on ${e.train.samples.toLocaleString()} ${samplesNoun} in ${(e.train.durationMs / 1000).toFixed(1)} s; sent ${(e.bytes / 1024).toFixed(0)} KiB.`);
  });
  c.on('model-updated', (e) => {
    say('global', e.accuracy === null ? '—' : percent(e.accuracy));
    say('rounds', `after round ${e.version}`);
  });
  c.on('disconnected', () => say('status', 'Offline — reconnecting…'));
  c.on('round-abandoned', (e) => say('local', `Round ${e.round} given up: ${e.reason}.`));
  c.on('finished', (e) => say('status', e.status === 'completed' ? 'The task has finished — thank you!' : 'The task was stopped.'));
  c.on('error', (e) => say('error', e.message));
}

$('consent').addEventListener('click', () => void start());

$('pause').addEventListener('click', async () => {
  if (!client) return;
  const button = $<HTMLButtonElement>('pause');
  if (client.isPaused) {
    await client.resume();
    button.textContent = 'Pause';
    say('status', 'Waiting for a round');
  } else {
    await client.pause();
    button.textContent = 'Resume';
    say('status', 'Paused: not taking rounds');
  }
});

$('leave').addEventListener('click', () => {
  client?.stop();
  client = undefined;
  localStorage.removeItem(consentKey);
  say('status', 'You left. Thank you!');
  for (const id of ['pause', 'leave', 'own-use']) $<HTMLButtonElement>(id).disabled = true;
});

// Consent given earlier: a reload rejoins by itself.
if (localStorage.getItem(consentKey) === 'yes') void start();
