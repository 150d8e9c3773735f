import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startTsWorker, type TsWorker } from '../server/ts-worker.ts';
import { FASHION_MNIST_DIR } from '../shared/data/fashion-mnist.ts';
import { withTaskDefaults, type Hyper, type StrategyName } from '../shared/protocol/task.ts';
import type { BenchOptions } from './options.ts';
import { table, writeLinePlot } from './report.ts';
import type { Calibration, Population, PrivacyTask, RunResult, RunSpec } from './privacy-worker.ts';

/**
 * Differential privacy's cost in accuracy: a fixed number of rounds at ε ∈ {1, 3, 8}
 * (δ = 1e-5), central (DP-FedAvg: the server clips and adds Gaussian noise) and
 * distributed (each device clips, rounds and adds Skellam noise before secure
 * aggregation), against the same runs without DP. In-process (see privacy-worker.ts):
 * Fashion-MNIST's 60,000 training images split IID among N simulated users, each round a
 * Poisson sample of them at q = m / N training with the real Trainer, the server's own
 * PrivacyBudget, strategies and distributed-DP codec. Every run is seeded (cohorts, local
 * training, rounding and noise), so a rerun gives the same table; runs are dealt to one
 * worker thread per core, heaviest first.
 */

export interface PrivacySettings {
  /** N: simulated users, the 60,000 training images split IID among them. */
  users: number;
  /** m: the expected cohort per round. */
  cohort: number;
  epsilons: readonly number[];
  delta: number;
  strategy: StrategyName;
  hyper: Hyper;
  /**
   * Distributed DP: bits per quantized value, and L, the fewest devices whose noise the sum
   * must carry: this many standard deviations below m of a Poisson cohort's size. A round
   * with fewer is not unmasked and is drawn again; 3 makes that 1 round in ~740, so the
   * cohorts stay the Poisson samples the accountant assumes (0.9·m is 1.6 sd below m at
   * m = 250: ~5 % of rounds would be redrawn, a sampling conditioned on its size).
   */
  bits: 8 | 16;
  minUpdatesSigmas: number;
  /** C is this quantile of the norms of round 1's non-private updates, to two significant digits. */
  clipQuantile: number;
  seed: number;
  /** Per-round curves on the first N test images; the table's final accuracy is on all 10,000. */
  curveTestLimit: number;
  /** Worker threads, one run at a time each. */
  workers: number;
  /** At targetEpsilon, each mode should end within this many points of the non-private run. */
  targetEpsilon: number;
  targetGapPp: number;
  dataDir: string;
}

/**
 * Sized on this 2-core machine. With two runs side by side on free cores, a user's 3 local
 * steps take ~28 ms and a device's distributed-DP encoding (2 × 200k Poisson draws for its
 * Skellam noise) ~34 ms more, so a distributed run costs ~2 central ones; the grid took
 * 10.1 min at m = 250 on free cores, grows with R·m, and doubles when other jobs share the
 * cores (m = 400: its two first runs alone took 12 min on shared cores).
 * Privacy: the noise on the mean update is z·C/m per coordinate, and z falls with q = m/N,
 * so N is large (6,000 users of 10 images each: a user still has a batch to train on) and m
 * as large as ~20 minutes allow on shared cores: m = 250, q = 1/24, z = 1.41 at ε = 1 and
 * 0.58 at ε = 8.
 * Local training and server step, tried without DP at m = 100 over 20 rounds: one local step
 * (lr 0.1) reached 63 % with FedAvg, 68 % with FedAdam and 70 % with FedAvgM (server momentum
 * 0.5); FedAvgM with 3 epochs over a user's 10 images (3 steps, lr 0.2) reached 78 %.
 */
export function defaultSettings(): PrivacySettings {
  return {
    users: 6_000,
    cohort: 250,
    epsilons: [1, 3, 8],
    delta: 1e-5,
    strategy: 'fedavgm',
    hyper: withTaskDefaults({ hyper: { localEpochs: 3, batchSize: 10, learningRate: 0.2, optimizer: 'sgd' } }).hyper,
    bits: 8,
    minUpdatesSigmas: 3,
    clipQuantile: 0.5,
    seed: 1,
    curveTestLimit: 2_000,
    workers: 2,
    targetEpsilon: 8,
    targetGapPp: 5,
    dataDir: FASHION_MNIST_DIR,
  };
}

export async function run(options: BenchOptions): Promise<void> {
  await runPrivacy(options, defaultSettings());
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const pct = (x: number) => (x * 100).toFixed(2);

const labelOf = (r: RunSpec) => (r.mode === 'off' ? 'no DP' : `${r.mode} ε=${r.epsilon}`);

/** C from round 1's update norms: the quantile, to two significant digits. */
function clipFrom(norms: readonly number[], quantile: number): number {
  const sorted = [...norms].sort((a, b) => a - b);
  const at = sorted[Math.min(sorted.length - 1, Math.floor(quantile * sorted.length))]!;
  return Number(at.toPrecision(2));
}

/** L = ⌊m − k·sd⌋ of a Poisson cohort's size (Binomial(N, q): sd = √(m(1 − q))). */
function minUpdatesOf(settings: PrivacySettings): number {
  const m = settings.cohort;
  const sd = Math.sqrt(m * (1 - m / settings.users));
  return Math.max(1, Math.floor(m - settings.minUpdatesSigmas * sd));
}

/** The grid, heaviest runs first (distributed DP encodes every device's update): the last to start are the shortest. */
function planRuns(settings: PrivacySettings, clipNorm: number): RunSpec[] {
  const minUpdates = minUpdatesOf(settings);
  const dp = (mode: 'central' | 'distributed') => settings.epsilons.map((epsilon) => ({ mode, epsilon, clipNorm, bits: settings.bits, minUpdates }));
  return [...dp('distributed'), ...dp('central'), { mode: 'off', epsilon: 0, clipNorm, bits: settings.bits, minUpdates }];
}

type Worker = TsWorker<PrivacyTask, Calibration | RunResult>;

/** Deals the runs to the workers, one at a time each, as they free up; results in the runs' order. */
async function runAll(workers: readonly Worker[], population: Population, runs: readonly RunSpec[]): Promise<RunResult[]> {
  const results: RunResult[] = new Array(runs.length);
  let next = 0;
  let done = 0;
  let failed = false;
  const started = performance.now();
  const lane = async (worker: Worker) => {
    try {
      for (let i = next++; i < runs.length; i = next++) {
        if (failed) return;
        const spec = runs[i]!;
        log(`[${i + 1}/${runs.length}] ${labelOf(spec)}…`);
        const result = (await worker.call({ kind: 'run', population, run: spec })) as RunResult;
        results[i] = result;
        const elapsed = (performance.now() - started) / 1000;
        log(`[${++done}/${runs.length} done] ${labelOf(spec)}: ${pct(result.finalAccuracy)} % in ${(result.wallMs / 1000).toFixed(0)} s (${elapsed.toFixed(0)} s so far)`);
      }
    } catch (error) {
      failed = true; // the other lanes stop after their current run
      throw error;
    }
  };
  await Promise.all(workers.slice(0, runs.length).map(lane));
  return results;
}

export async function runPrivacy(options: BenchOptions, settings: PrivacySettings): Promise<void> {
  const started = performance.now();
  const population: Population = {
    users: settings.users,
    cohort: settings.cohort,
    rounds: options.rounds,
    seed: settings.seed,
    hyper: settings.hyper,
    strategy: settings.strategy,
    delta: settings.delta,
    curveTestLimit: settings.curveTestLimit,
    dataDir: settings.dataDir,
  };
  log(
    `privacy: ${settings.users} users, Poisson cohorts of m = ${settings.cohort} (q = ${(settings.cohort / settings.users).toFixed(4)}) × ${population.rounds} rounds, ` +
      `${settings.workers} workers (--clients does not apply: the cohort is set in bench/privacy.ts)…`,
  );
  const workers: Worker[] = Array.from({ length: settings.workers }, () => startTsWorker(new URL('./privacy-worker.ts', import.meta.url)));
  try {
    const { norms } = (await workers[0]!.call({ kind: 'calibrate', population })) as Calibration;
    const clipNorm = clipFrom(norms, settings.clipQuantile);
    log(`C = ${clipNorm}: the ${settings.clipQuantile} quantile of round 1's ${norms.length} non-private update norms`);
    const runs = planRuns(settings, clipNorm);
    const results = await runAll(workers, population, runs);
    await report(options, settings, population, { clipNorm, norms }, results, performance.now() - started);
  } finally {
    await Promise.all(workers.map((w) => w.close()));
  }
}

function find(results: readonly RunResult[], mode: RunSpec['mode'], epsilon?: number): RunResult | undefined {
  return results.find((r) => r.run.mode === mode && (epsilon === undefined || r.run.epsilon === epsilon));
}

/** Mean |change| of a run's curve between consecutive rounds over its last 5 rounds, in pp. */
function fluctuation(r: RunResult): number {
  const tail = r.curve.slice(-6).map((p) => p.accuracy);
  const steps = tail.slice(1).map((a, i) => Math.abs(a - tail[i]!));
  return (steps.reduce((a, b) => a + b, 0) / Math.max(1, steps.length)) * 100;
}

function summary(values: readonly number[]): string {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return `mean ${mean.toFixed(1)}, min ${Math.min(...values)}, max ${Math.max(...values)}`;
}

function resultsTable(results: readonly RunResult[], baseline: number): string {
  const dash = '—';
  const rows = results.map((r) => {
    const dp = r.run.mode !== 'off';
    const z = r.noiseMultiplier;
    return [
      r.run.mode === 'off' ? 'none' : r.run.mode,
      dp ? r.run.epsilon : dash,
      r.spent !== null ? r.spent.toFixed(3) : dash,
      z !== null ? z.toFixed(3) : dash,
      dp ? r.run.clipNorm : dash,
      r.noiseStd !== null ? r.noiseStd.toExponential(2) : dash,
      pct(r.finalAccuracy),
      r.run.mode === 'off' ? dash : ((r.finalAccuracy - baseline) * 100).toFixed(2),
      r.ring ? `${r.ring.bits} (${r.ring.plainBits})` : dash,
      r.ring ? `${r.ring.bytesPerParameter.toFixed(3)} (${r.ring.plainBytesPerParameter.toFixed(3)})` : dash,
      (r.wallMs / 1000).toFixed(0),
    ];
  });
  const headers = ['DP', 'target ε', 'ε spent', 'z', 'C', 'noise std on mean', 'test acc %', 'Δ vs no DP (pp)', 'ring bits w (plain)', 'bytes/param (plain)', 'run s'];
  return table(headers, rows);
}

/** What distributed DP would need at the other bit width: rounding adds √d to the sensitivity, which wider levels shrink. */
function widthNote(settings: PrivacySettings, distributed: readonly RunResult[]): string[] {
  const rows = distributed.flatMap((r) => {
    const o = r.otherWidth;
    return o ? [`ε = ${r.run.epsilon}: noise std ${o.noiseStd.toExponential(2)} (run: ${r.noiseStd!.toExponential(2)}), w = ${o.ringBits} for m devices, ${o.bytesPerParameter.toFixed(3)} bytes/param`] : [];
  });
  const bits = distributed[0]?.otherWidth?.bits;
  return rows.length && bits ? [`Distributed DP at ${bits} bits instead of ${settings.bits} (computed, not run): ${rows.join('; ')}.`] : [];
}

function verdicts(settings: PrivacySettings, results: readonly RunResult[], baseline: number): string {
  const target = settings.targetGapPp;
  const rows = (['central', 'distributed'] as const).map((mode) => {
    const r = find(results, mode, settings.targetEpsilon);
    const gap = r ? (r.finalAccuracy - baseline) * 100 : undefined;
    return [mode, r ? pct(r.finalAccuracy) : 'n/a', gap === undefined ? 'n/a' : gap.toFixed(2), gap === undefined ? 'n/a' : gap >= -target ? 'met' : 'MISSED'];
  });
  return `Target: at ε = ${settings.targetEpsilon}, within ${target} pp of no DP (${pct(baseline)} %)\n${table(['DP', 'test acc %', 'Δ (pp)', 'target'], rows)}`;
}

async function writePlots(out: string, population: Population, results: readonly RunResult[]): Promise<string[]> {
  const x = Array.from({ length: population.rounds }, (_, i) => i + 1);
  const baseline = find(results, 'off');
  const files: string[] = [];
  for (const mode of ['central', 'distributed'] as const) {
    const runs = results.filter((r) => r.run.mode === mode);
    const series = [...(baseline ? [baseline] : []), ...runs].map((r) => ({ label: labelOf(r.run), values: r.curve.map((p) => p.accuracy) }));
    const file = join(out, `privacy-${mode}.html`);
    const title = `Test accuracy per round, ${mode} DP vs none (δ = ${population.delta.toExponential(0)}; m = ${population.cohort} of ${population.users} users; first ${population.curveTestLimit} test images)`;
    await writeLinePlot(file, title, 'round', 'test accuracy', x, series);
    files.push(file);
  }
  return files;
}

async function report(options: BenchOptions, settings: PrivacySettings, population: Population, clip: { clipNorm: number; norms: number[] }, results: RunResult[], wallMs: number) {
  const baseline = find(results, 'off')!.finalAccuracy;
  const participants = find(results, 'off')!.curve.map((p) => p.participants);
  const distributed = results.filter((r) => r.run.mode === 'distributed');
  const first = distributed[0];
  const redrawn = first ? first.curve.filter((p) => p.draws > 1).length : 0;
  const central = results.filter((r) => r.run.mode === 'central');
  const clippedShare = central.length
    ? central.reduce((a, r) => a + r.curve.reduce((b, p) => b + p.clipped / p.participants, 0) / r.curve.length, 0) / central.length
    : 0;
  const h = settings.hyper;
  const lines = [
    `Differential privacy: Fashion-MNIST, mlp (${results[0]!.parameters.toLocaleString('en')} parameters), ${settings.users.toLocaleString('en')} users ` +
      `(60,000 training images split IID, ${60_000 / settings.users} each), ${population.rounds} rounds, seed ${settings.seed}.`,
    `Each round Poisson-samples every user with q = m/N = ${settings.cohort}/${settings.users} = ${(settings.cohort / settings.users).toFixed(4)} ` +
      `(cohort sizes ${summary(participants)}), from a seeded Rng, as is the DP noise: a rerun gives the same table (production draws noise from cryptoRng).`,
    `Local training (the real Trainer, TF.js WASM): ${h.localEpochs} epochs of batch ${h.batchSize} (${h.localEpochs * Math.ceil(60_000 / settings.users / h.batchSize)} steps), ${h.optimizer} lr ${h.learningRate}; ` +
      `server: ${results[0]!.strategy.split(' → ')[1]} (${results.map((r) => r.strategy).filter((s, i, a) => a.indexOf(s) === i).join('; ')}).`,
    `C = ${clip.clipNorm}: the ${settings.clipQuantile} quantile of the L2 norms of round 1's ${clip.norms.length} non-private updates (tuned on the training data, as DP papers tune C; ` +
      `a deployment takes it from a proxy task or adapts it privately with targetQuantile); the central runs clipped ${(clippedShare * 100).toFixed(0)} % of updates, on average over rounds.`,
    `Central: PrivacyBudget calibrates z for ${population.rounds} rounds at q; the server clips to C, adds N(0, (zC)²) to the sum and divides by m.`,
    ...(first
      ? [
          `Distributed: secure rounds of ${settings.bits}-bit levels, L = ${first.run.minUpdates} (m − ${settings.minUpdatesSigmas} sd of the cohort size); each device adds Skellam noise of variance σ²/L ` +
            `(σ² = ${first.variance!.toExponential(3)} levels² at ε = ${first.run.epsilon}), as masked-round.ts configures it. The sum of the devices' inputs mod 2^w is ` +
            `bit for bit what the server unmasks (the masks cancel exactly), so the simulation adds the unmasked inputs, decodes over m and steps. ` +
            `No device drops out, so the sum carries n/L·σ²; devices carry no rounding residual between rounds (a simulated user keeps no state). ` +
            `${redrawn} of ${population.rounds} rounds drew a cohort smaller than L and drew again, as a real round that cannot unmask is retried.`,
        ]
      : []),
    '',
    `Final test accuracy (all 10,000 Fashion-MNIST test images) after ${population.rounds} rounds`,
    resultsTable(results, baseline),
    '',
    'ring bits w: the widest ring of the run\'s rounds (in brackets: a plain secure round of as many devices, bits + ⌈log2 n⌉); bytes/param: one device\'s upload per parameter.',
    ...widthNote(settings, distributed),
    '',
    verdicts(settings, results, baseline),
    `Run-to-run scale: the no-DP curve moves by ${fluctuation(find(results, 'off')!).toFixed(2)} pp a round on average over its last 5 rounds; one seed per cell.`,
    '',
    `Wall time: ${(wallMs / 60_000).toFixed(1)} min on ${settings.workers} worker thread(s).`,
  ];
  console.log(`\n${lines.join('\n')}`);

  await mkdir(options.out, { recursive: true });
  const plots = await writePlots(options.out, population, results);
  const json = join(options.out, 'privacy.json');
  await writeFile(json, JSON.stringify({ population, settings, clip, wallMs, results }, null, 2));
  console.log(`\nplots: ${plots.join(', ')}; raw results: ${json}`);
}
