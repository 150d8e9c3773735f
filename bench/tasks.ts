import { availableParallelism } from 'node:os';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BUILTIN_DATASETS, BUILTIN_NAMES, isBuiltin, type BuiltinName } from '../shared/data/builtin.ts';
import { runInLanes } from './lanes.ts';
import type { BenchOptions } from './options.ts';
import { table, writeLinePlot } from './report.ts';
import type { TaskLimits } from './task-data.ts';
import type { JobResult, TaskJob } from './tasks-worker.ts';

/**
 * The built-in tasks, federated against central: each task's own split among N clients
 * (spec.shards = N, the task's partition), every client in every round, FedAvg through the
 * product's strategy, 8-bit updates through the product's codec and sealing; against the
 * same model trained on the pooled training rows for as many sample visits. Each run is
 * seeded; the runs are dealt to worker threads (one per core, at most two), heaviest first.
 */

export interface TasksSettings {
  tasks: readonly BuiltinName[];
  limits: Record<BuiltinName, TaskLimits>;
  seed: number;
  workers: number;
  /** Scores in [0, 1] (accuracy) may trail central by this many points… */
  targetGapPp: number;
  /** …other headlines (perplexity, MSE) by this fraction of central's value. */
  targetRelative: number;
}

/**
 * Sized on this 2-core machine. One local epoch, timed on a core shared with other jobs:
 * the mlp took 1.16 ms per Fashion-MNIST image, the GRU 3.75 ms per 24-character window,
 * the penguins' mlp ~0.25 s per client-round whatever its 24–38 rows (per-step overhead);
 * scoring 1,000 test rows ~0.25 s (mlp) and ~1 s (GRU), once per round. A federated run
 * and its central twin train the same sample visits, so each costs about rounds × clients
 * × rows × that: ~22 min for the six runs at 2,000 images and 1,000 windows a client on
 * two free cores. The cores were not free (load average 10–24 from other jobs, the bench
 * at nice 19): a federated fortunes round took 2.5 min instead of ~40 s, and that run was
 * stopped at round 5. So fortunes clients keep 400 windows: the six runs took 17.4 min
 * (fortunes 558 s federated / 510 s central, Fashion-MNIST 512 / 478 s) at load average
 * 3–17. Tests: all 10,000 Fashion-MNIST images, all 65 test penguins, 2,000 of the 8,408
 * test windows.
 */
export const DEFAULT_LIMITS: Record<BuiltinName, TaskLimits> = {
  'fashion-mnist': { clientLimit: 2_000, testLimit: 0 },
  penguins: { clientLimit: 0, testLimit: 0 },
  fortunes: { clientLimit: 400, testLimit: 2_000 },
};

/** `--tasks a,b` (read when the CLI passes it; all built-ins otherwise). */
export type TasksOptions = BenchOptions & { tasks?: string };

export function parseTasks(list: string | undefined): BuiltinName[] {
  if (!list) return [...BUILTIN_NAMES];
  return list.split(',').map((name) => {
    const trimmed = name.trim();
    if (!isBuiltin(trimmed)) throw new Error(`--tasks takes built-in task names (${BUILTIN_NAMES.join(', ')}), got "${trimmed}"`);
    return trimmed;
  });
}

export function defaultSettings(options: TasksOptions): TasksSettings {
  return {
    tasks: parseTasks(options.tasks),
    limits: DEFAULT_LIMITS,
    seed: 1,
    workers: Math.min(2, availableParallelism()),
    targetGapPp: 2,
    targetRelative: 0.05,
  };
}

export async function run(options: TasksOptions): Promise<void> {
  await runTasks(options, defaultSettings(options));
}

/** One client's local round at the default limits, ms (from the timings above): the heaviest runs are dealt first. */
const CLIENT_ROUND_MS: Record<BuiltinName, number> = { 'fashion-mnist': 2_300, penguins: 250, fortunes: 1_500 };

function planJobs(options: BenchOptions, settings: TasksSettings): TaskJob[] {
  const jobs = settings.tasks.flatMap((task) =>
    (['federated', 'central'] as const).map((kind) => ({ kind, task, clients: options.clients, rounds: options.rounds, seed: settings.seed, limits: settings.limits[task] })),
  );
  return jobs.sort((a, b) => CLIENT_ROUND_MS[b.task] - CLIENT_ROUND_MS[a.task]);
}

export async function runTasks(options: BenchOptions, settings: TasksSettings): Promise<void> {
  const started = performance.now();
  const jobs = planJobs(options, settings);
  process.stderr.write(`tasks: ${settings.tasks.join(', ')}; ${options.clients} clients × ${options.rounds} rounds each, federated and central, ${settings.workers} workers…\n`);
  const results = await runInLanes<TaskJob, JobResult>(new URL('./tasks-worker.ts', import.meta.url), jobs, settings.workers, {
    label: (job) => `${job.task} ${job.kind}`,
    outcome: (r) => `${r.headline.name} ${headlineOf(r).toFixed(4)} in ${(r.wallMs / 1000).toFixed(0)} s`,
  });
  await report(options, settings, results, performance.now() - started);
}

const headlineOf = (r: JobResult) => r.final[r.headline.name] ?? Number.NaN;

/** Scores in [0, 1] compare in points; the rest relative to central. */
const inPoints = (name: string) => name === 'accuracy' || name === 'auc';

interface Verdict {
  task: BuiltinName;
  federated: JobResult;
  central: JobResult;
  /** Federated minus central, in pp or % of central. */
  gap: number;
  unit: 'pp' | '%';
  /** How far federated trails central, in the gap's unit (negative: it does better). */
  shortfall: number;
  limit: number;
  met: boolean;
}

function verdict(settings: TasksSettings, task: BuiltinName, results: readonly JobResult[]): Verdict | undefined {
  const federated = results.find((r) => r.job.task === task && r.job.kind === 'federated');
  const central = results.find((r) => r.job.task === task && r.job.kind === 'central');
  if (!federated || !central) return undefined;
  const [f, c] = [headlineOf(federated), headlineOf(central)];
  const points = inPoints(federated.headline.name);
  const gap = points ? (f - c) * 100 : ((f - c) / c) * 100;
  const shortfall = federated.headline.higherIsBetter ? -gap : gap;
  const limit = points ? settings.targetGapPp : settings.targetRelative * 100;
  return { task, federated, central, gap, unit: points ? 'pp' : '%', shortfall, limit, met: shortfall <= limit };
}

const show = (name: string, x: number) => (inPoints(name) ? `${(x * 100).toFixed(2)} %` : x.toFixed(3));

function limitsText(task: BuiltinName, r: JobResult, limits: TaskLimits): string {
  const sizes = r.shardSizes;
  const rows = limits.clientLimit > 0 ? `an even spread of ${limits.clientLimit} rows of each client's shard` : "each client's whole shard";
  const test = limits.testLimit > 0 ? `an even spread of ${r.testRows} test rows` : `all ${r.testRows} test rows`;
  return `  ${task}: ${rows} (${Math.min(...sizes)}–${Math.max(...sizes)} rows, ${sizes.reduce((a, b) => a + b, 0)} pooled); ${test}`;
}

async function writePlots(out: string, options: BenchOptions, verdicts: readonly Verdict[]): Promise<string[]> {
  const files: string[] = [];
  for (const v of verdicts) {
    const name = v.federated.headline.name;
    const x = v.federated.curve.map((p) => p.round);
    const central = headlineOf(v.central);
    const file = join(out, `tasks-${v.task}.html`);
    const title = `${v.task}: test ${name} per round, ${options.clients} clients (FedAvg, 8-bit updates), against central after the same ${v.central.visits.toLocaleString('en')} sample visits`;
    await writeLinePlot(file, title, 'round', `test ${name}`, x, [
      { label: 'federated', values: v.federated.curve.map((p) => p.metrics[name] ?? Number.NaN) },
      { label: 'central, after the same sample visits', values: x.map(() => central) },
    ]);
    files.push(file);
  }
  return files;
}

async function report(options: BenchOptions, settings: TasksSettings, results: JobResult[], wallMs: number): Promise<void> {
  const verdicts = settings.tasks.flatMap((task) => verdict(settings, task, results) ?? []);
  const rows = verdicts.map((v) => {
    const name = v.federated.headline.name;
    const hyper = BUILTIN_DATASETS[v.task].defaults.hyper;
    return [
      v.task,
      `${BUILTIN_DATASETS[v.task].model.kind} (${v.federated.parameters.toLocaleString('en')})`,
      `${hyper.localEpochs} × ${hyper.batchSize}, ${hyper.optimizer} ${hyper.learningRate}`,
      `${name} (${v.federated.headline.higherIsBetter ? 'higher' : 'lower'} is better)`,
      show(name, headlineOf(v.federated)),
      show(name, headlineOf(v.central)),
      `${v.gap >= 0 ? '+' : ''}${v.gap.toFixed(2)} ${v.unit}`,
      `trails ≤ ${v.limit} ${v.unit}`,
      v.met ? 'met' : 'MISSED',
      [v.federated, v.central].map((r) => `${r.trainingLoss.toFixed(3)} / ${(r.final.loss ?? Number.NaN).toFixed(3)}`).join('; '),
      `${(v.federated.wallMs / 1000).toFixed(0)} / ${(v.central.wallMs / 1000).toFixed(0)}`,
    ];
  });
  const headers = ['task', 'model (params)', 'local epochs × batch, optimizer lr', 'headline', 'federated', 'central', 'gap', 'target', 'verdict', 'train / test loss: fed; central', 'run s (fed / central)'];
  const lines = [
    `Built-in tasks: ${options.clients} clients (the task's own partition, spec.shards = ${options.clients}), every client every round, ${options.rounds} rounds, ` +
      `FedAvg (the product's strategy), 8-bit updates (encodeUpdate with each client's residual, sealed, opened and decoded as the server does), seed ${settings.seed}.`,
    'Central: the same model and initial weights, one continuous run over the pooled training rows of all clients for the same sample visits ' +
      '(rounds × local epochs epochs), same batch size, optimizer and learning rate. Both scored on the built-in test split:',
    ...verdicts.map((v) => limitsText(v.task, v.federated, settings.limits[v.task])),
    '',
    table(headers, rows),
    '',
    "Train loss: the mean over the last epoch's steps (federated: the last round's clients, weighted by samples); a train loss far below the test loss is overfitting.",
    `Backends: ${[...new Set(results.map((r) => `${r.job.task} ${r.backend}`))].join(', ')}. Wall time: ${(wallMs / 60_000).toFixed(1)} min on ${settings.workers} worker thread(s).`,
  ];
  console.log(`\n${lines.join('\n')}`);
  await mkdir(options.out, { recursive: true });
  const plots = await writePlots(options.out, options, verdicts);
  const json = join(options.out, 'tasks.json');
  await writeFile(json, JSON.stringify({ options, settings, wallMs, results }, null, 2));
  console.log(`\nplots: ${plots.join(', ')}; raw results: ${json}`);
}
