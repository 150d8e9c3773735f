import { concatSets, createBrowserClient, demoShardData, FASHION_MNIST_LABELS, imagesToSamples, type FederatedClient } from '../../client/browser/sdk.ts';
import type { LabelledSet } from '../../shared/data/dataset.ts';
import { readInvite } from './invite.ts';

/**
 * The contribute page: consent first, then the best backend that checks out, the task's
 * demo shard (or the user's own images) as local data, and live progress. Consent and
 * identity are remembered, so a reload rejoins.
 */

const { taskId, token } = readInvite(location);
const consentKey = `tributary:consent:${taskId}`;
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const say = (id: string, text: string) => ($(id).textContent = text);
const percent = (x: number) => `${(x * 100).toFixed(1)} %`;

say('task-line', `Task ${taskId}${token ? ', invited with an enrollment token' : ''}.`);
for (const [i, name] of FASHION_MNIST_LABELS.entries()) $('own-label').append(new Option(name, String(i)));

let client: FederatedClient | undefined;
let ownImages: LabelledSet | undefined;

async function start(): Promise<void> {
  localStorage.setItem(consentKey, 'yes');
  $('intro').classList.add('hidden');
  $('work').classList.remove('hidden');
  say('status', 'Checking this device…');
  client = await createBrowserClient({
    server: location.origin,
    taskId,
    enrollment: token ? { token } : 'open',
    onBackend: (choice) => {
      say('backend', `${choice.name}${choice.adapter ? ` (${choice.adapter})` : ''}`);
      $('backend').dataset.backend = choice.name;
      if (choice.relativeError !== undefined) $('backend').dataset.relativeError = String(choice.relativeError);
      const skipped = choice.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
      say('backend-detail', `${Math.round(choice.throughput).toLocaleString()} samples/s${choice.relativeError === undefined ? '' : `, first step within ${choice.relativeError.toExponential(1)} of the CPU's`}${skipped ? `. Passed over — ${skipped}` : ''}`);
    },
    data: async ({ task, shard }) => {
      say('status', 'Loading local data…');
      const demo = await demoShardData(location.origin, task.id, shard ?? 0);
      say('data', `${demo.n.toLocaleString()} images`);
      say('data-detail', `demo shard ${shard ?? 0} of ${task.spec.shards}, kept in this browser${ownImages ? `, plus ${ownImages.n} of yours` : ''}`);
      return ownImages ? concatSets(demo, ownImages) : demo;
    },
  });
  client.on('joined', (e) => {
    say('status', e.resumed ? 'Back in the task' : 'Waiting for a round');
    say('fingerprint', e.serverFingerprint);
    document.title = `Contributing to ${e.task.spec.name} · Tributary`;
  });
  client.on('round-start', (e) => {
    say('status', `Training round ${e.round}`);
    ($('progress') as HTMLProgressElement).value = 0;
  });
  client.on('progress', (e) => {
    ($('progress') as HTMLProgressElement).value = e.fraction;
    if (e.fraction >= 1) say('status', `Sending round ${e.round}`);
  });
  client.on('uploaded', (e) => {
    say('status', 'Update sent; waiting for the next round');
    say('local', `Round ${e.round}: local accuracy ${percent(e.train.accuracy)}, loss ${e.train.loss.toFixed(3)} on ${e.train.samples.toLocaleString()} images in ${(e.train.durationMs / 1000).toFixed(1)} s; sent ${(e.bytes / 1024).toFixed(0)} KiB.`);
  });
  client.on('model-updated', (e) => {
    say('global', percent(e.accuracy));
    say('rounds', `after round ${e.version}`);
  });
  client.on('disconnected', () => say('status', 'Offline — reconnecting…'));
  client.on('round-abandoned', (e) => say('local', `Round ${e.round} given up: ${e.reason}.`));
  client.on('finished', (e) => say('status', e.status === 'completed' ? 'The task has finished — thank you!' : 'The task was stopped.'));
  client.on('error', (e) => say('error', e.message));
  try {
    await client.start();
  } catch (error) {
    say('status', 'Could not join');
    say('error', (error as Error).message);
  }
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
  for (const id of ['pause', 'leave']) $<HTMLButtonElement>(id).disabled = true;
});

$('own-files').addEventListener('change', async () => {
  const files = [...($<HTMLInputElement>('own-files').files ?? [])];
  if (files.length === 0) return;
  const added = await imagesToSamples(files, Number($<HTMLSelectElement>('own-label').value));
  ownImages = ownImages ? concatSets(ownImages, added) : added;
  say('own-status', `${ownImages.n} image(s) ready; they join your data when you next (re)join.`);
});

// Consent given earlier: a reload rejoins by itself.
if (localStorage.getItem(consentKey) === 'yes') void start();
