import { parentPort } from 'node:worker_threads';
import type * as tfl from '@tensorflow/tfjs-layers';
import { Trainer } from '../client/trainer.ts';
import { activateNodeBackend } from '../client/node/tf.ts';
import { folderFiles } from '../node/dataset-files.ts';
import { PrivacyBudget } from '../server/privacy/budget.ts';
import { createStrategy } from '../server/strategies/index.ts';
import type { Strategy } from '../server/strategies/strategy.ts';
import { serveTasks } from '../server/ts-worker.ts';
import { secureInputLength } from '../shared/codec/secure-codec.ts';
import { selectRows, type LabelledSet } from '../shared/data/dataset.ts';
import { FASHION_MNIST_SCHEMA, loadFashionMnist } from '../shared/data/fashion-mnist.ts';
import { partitionIndices } from '../shared/data/partition.ts';
import { countParameters, subtractWeights, type Weights } from '../shared/ml/aggregate.ts';
import { evaluationSums } from '../shared/ml/evaluate.ts';
import { DEFAULT_MODELS } from '../shared/ml/model-spec.ts';
import { buildModel, readWeights, writeWeights } from '../shared/ml/models.ts';
import { objectiveOf } from '../shared/ml/objective.ts';
import { l2Norm } from '../shared/ml/norms.ts';
import { decodeDistributedSum, distributedRingBits, encodeDistributedInput } from '../shared/privacy/distributed.ts';
import { withTaskDefaults, type Hyper, type StrategyName, type TaskModel, type TaskSpec } from '../shared/protocol/task.ts';
import { createRng, deriveSeed, type Rng } from '../shared/random.ts';
import { addInto, fromLevels, newRingVector, ringBits, ringWireBytes } from '../shared/secagg/ring.ts';

/**
 * One run of the privacy grid, in a worker thread of its own: an in-process federated run
 * (no sockets) over a large simulated population. Each round Poisson-samples the users at
 * q = m / N, each sampled user trains the global model on its own images with the real
 * Trainer, and the server's own code turns the updates into a step: the plain mean, the
 * central-DP wrapper (createStrategy with the task's PrivacyBudget), or, for distributed
 * DP, each device's encodeDistributedInput summed in Z(2^w), decodeDistributedSum, and the
 * strategy's step. Sampling, training, rounding and noise all come from seeded generators,
 * so a rerun gives the same numbers (production draws DP noise from cryptoRng()).
 */

/** Fashion-MNIST's dense model: two hidden layers of 200 (199,210 parameters). */
const TASK: TaskModel = { model: DEFAULT_MODELS.mlp, data: FASHION_MNIST_SCHEMA };
const OBJECTIVE = objectiveOf(TASK.data);

export type PrivacyRunMode = TaskSpec['privacy']['mode'];

/** What every run shares: the users and their data, the sampling and the local training. */
export interface Population {
  /** N: the 60,000 training images are split IID among this many users. */
  users: number;
  /** m: the expected cohort; each user takes part in a round with probability q = m / N. */
  cohort: number;
  rounds: number;
  seed: number;
  hyper: Hyper;
  strategy: StrategyName;
  delta: number;
  /** Per-round curves on the first N test images; the final accuracy is on all 10,000. */
  curveTestLimit: number;
  dataDir: string;
}

export interface RunSpec {
  mode: PrivacyRunMode;
  /** Target ε over all rounds (unused when mode is off). */
  epsilon: number;
  /** C: each update's L2 clip (unused when mode is off). */
  clipNorm: number;
  /** Distributed DP: bits per quantized value, and L, the fewest devices whose noise the unmasked sum must carry. */
  bits: 8 | 16;
  minUpdates: number;
}

export type PrivacyTask = { kind: 'calibrate'; population: Population } | { kind: 'run'; population: Population; run: RunSpec };

/** A calibrate task's answer: the L2 norms of round 1's non-private updates. */
export interface Calibration {
  norms: number[];
}

/** Distributed DP: the widest ring a run's rounds used, against a plain secure round of as many devices. */
export interface RingUse {
  bits: number;
  plainBits: number;
  /** One device's upload, per model parameter. */
  bytesPerParameter: number;
  plainBytesPerParameter: number;
}

/** Distributed DP at the other bit width (not run): the noise and ring it would need, for m devices. */
export interface OtherWidth {
  bits: 8 | 16;
  /** Per-coordinate noise std on the mean update (see RunResult.noiseStd). */
  noiseStd: number;
  ringBits: number;
  bytesPerParameter: number;
}

export interface RoundPoint {
  round: number;
  /** On the first curveTestLimit Fashion-MNIST test images. */
  accuracy: number;
  loss: number;
  participants: number;
  /** Distributed DP: cohorts drawn before one reached L (a real round with fewer is not unmasked, and is retried). */
  draws: number;
  medianNorm: number;
  /** Updates longer than C (DP runs). */
  clipped: number;
  /** ε spent by the end of this round (DP runs). */
  epsilon: number | null;
  /** Distributed DP: the round's ring, and what a plain secure round of as many devices would use. */
  ringBits: number | null;
  plainRingBits: number | null;
}

export interface RunResult {
  run: RunSpec;
  /** What the strategy reported running, e.g. "dp-central(mean) → fedavg". */
  strategy: string;
  /** z: noise std over sensitivity (distributed: σ / l2, rounding counted in l2). */
  noiseMultiplier: number | null;
  /**
   * Per-coordinate noise std on the mean update, in model units: central z·C/m; distributed
   * step·√(m·σ²/L)/m, what m devices adding σ²/L each put on the sum, over m.
   */
  noiseStd: number | null;
  /** ε the accountant charges for all the rounds (≤ the target). */
  spent: number | null;
  /** Distributed DP: σ² on the sum and the step of one level. */
  variance: number | null;
  step: number | null;
  parameters: number;
  ring: RingUse | null;
  otherWidth: OtherWidth | null;
  curve: RoundPoint[];
  finalAccuracy: number;
  finalLoss: number;
  wallMs: number;
  trainMs: number;
  /** Distributed DP: devices' encoding (clip, round, Skellam noise) and the ring sum. */
  encodeMs: number;
}

/** A worker's data, model and trainer, set up once for every run it does. */
interface Setting {
  key: string;
  train: LabelledSet;
  test: LabelledSet;
  curveTest: LabelledSet;
  /** Each user's image indices. */
  users: number[][];
  initial: Weights;
  lengths: number[];
  trainer: Trainer;
  evaluator: tfl.LayersModel;
  /**
   * Round 1 samples the same cohort in every run and starts from the same seeded model, so
   * its training is the same computation in all of them (TF.js on WASM is deterministic):
   * done once per worker. From round 2 the global models differ.
   */
  firstRound: Map<number, Weights>;
}

let setting: Promise<Setting> | undefined;

async function setUp(population: Population): Promise<Setting> {
  const key = JSON.stringify(population);
  const current = await setting?.catch(() => undefined);
  if (current?.key === key) return current;
  current?.trainer.dispose();
  current?.evaluator.dispose();
  await activateNodeBackend(TASK.model);
  const source = folderFiles(population.dataDir);
  const train = await loadFashionMnist(source, 'train');
  const test = await loadFashionMnist(source, 't10k');
  const users = partitionIndices(train.y, FASHION_MNIST_SCHEMA.labels.length, population.users, { kind: 'iid' }, population.seed);
  const evaluator = await buildModel(TASK.model, TASK.data, population.seed);
  const initial = readWeights(evaluator);
  const n = population.curveTestLimit > 0 ? Math.min(test.n, population.curveTestLimit) : test.n;
  const curveTest = { ...test, x: test.x.subarray(0, n * test.features), y: test.y.subarray(0, n), n };
  return { key, train, test, curveTest, users, initial, lengths: initial.map((t) => t.length), trainer: await Trainer.create(TASK, population.seed), evaluator, firstRound: new Map() };
}

export function specFor(population: Population, run: RunSpec): TaskSpec {
  const base = {
    name: 'privacy bench',
    dataset: 'fashion-mnist',
    model: TASK.model,
    partition: { kind: 'iid' },
    shards: population.users,
    clientsPerRound: population.cohort,
    rounds: population.rounds,
    scheduling: 'uniform',
    strategy: population.strategy,
    hyper: population.hyper,
    seed: population.seed,
  } as const;
  if (run.mode === 'off') return withTaskDefaults(base);
  const privacy = { mode: run.mode, epsilon: run.epsilon, delta: population.delta, clipNorm: run.clipNorm, population: population.users };
  if (run.mode === 'central') return withTaskDefaults({ ...base, privacy });
  return withTaskDefaults({ ...base, privacy, secure: true, bits: run.bits, minUpdates: run.minUpdates });
}

/** Poisson sampling: each user independently with probability q. Draw `draw` of a round, for a round that must be drawn again. */
function sampleCohort(population: Population, round: number, draw: number): number[] {
  const rng = createRng(deriveSeed('privacy-cohort', population.seed, round, draw));
  const q = population.cohort / population.users;
  const cohort: number[] = [];
  for (let u = 0; u < population.users; u++) if (rng.next() < q) cohort.push(u);
  return cohort;
}

async function trainUser(s: Setting, population: Population, user: number, global: Weights, round: number): Promise<Weights> {
  const first = round === 1 && global === s.initial;
  const memo = first ? s.firstRound.get(user) : undefined;
  if (memo) return memo;
  const set = selectRows(s.train, s.users[user]!);
  const result = await s.trainer.train(global, set, population.hyper, deriveSeed('privacy-train', population.seed, user, round));
  const delta = subtractWeights(result.weights, global);
  if (first) s.firstRound.set(user, delta);
  return delta;
}

async function accuracyOf(s: Setting, global: Weights, set: LabelledSet) {
  writeWeights(s.evaluator, global);
  // A classification objective always scores both; the defaults only satisfy its Record type.
  const { accuracy = Number.NaN, loss = Number.NaN } = OBJECTIVE.metrics(await evaluationSums(s.evaluator, set, TASK.data));
  return { accuracy, loss };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length === 0 ? Number.NaN : sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Norms of round 1's updates (the cohort every run starts with), to choose C from. */
async function calibrate(population: Population): Promise<Calibration> {
  const s = await (setting = setUp(population));
  const norms: number[] = [];
  for (const user of sampleCohort(population, 1, 1)) norms.push(l2Norm(await trainUser(s, population, user, s.initial, 1)));
  return { norms };
}

interface Stepped {
  global: Weights;
  point: Omit<RoundPoint, 'accuracy' | 'loss' | 'epsilon'>;
  trainMs: number;
  encodeMs: number;
}

type RoundStep = (global: Weights, round: number) => Promise<Stepped>;

/** Plain and central-DP rounds: the cohort's updates through the strategy's combine (clip and noise, or the mean) and step. */
function plainRound(s: Setting, population: Population, run: RunSpec, strategy: Strategy): RoundStep {
  return async (global, round) => {
    const t0 = performance.now();
    const cohort = sampleCohort(population, round, 1);
    const updates = [];
    const norms: number[] = [];
    for (const user of cohort) {
      const delta = await trainUser(s, population, user, global, round);
      norms.push(l2Norm(delta));
      updates.push({ clientId: String(user), delta, weight: s.users[user]!.length });
    }
    const trainMs = performance.now() - t0;
    const combined = strategy.combine(updates, round);
    const clipped = run.mode === 'central' ? norms.filter((n) => n > run.clipNorm).length : 0;
    const point = { round, participants: cohort.length, draws: 1, medianNorm: median(norms), clipped, ringBits: null, plainRingBits: null };
    return { global: await strategy.step(global, combined.delta, round), point, trainMs, encodeMs: 0 };
  };
}

/**
 * Distributed-DP rounds, as a secure round runs them (server/secagg/masked-round.ts): each
 * device adds σ²/L of Skellam noise to its clipped, rounded update in the round's ring
 * (w from distributedRingBits for the round's n devices); the sum of the inputs mod 2^w is
 * bit for bit what the server unmasks (pairwise masks cancel exactly in the ring), so the
 * simulation adds the unmasked inputs; decodeDistributedSum over m, then the strategy's step.
 * A cohort smaller than L would not be unmasked: the round is drawn again.
 */
function distributedRound(s: Setting, population: Population, spec: TaskSpec, budget: PrivacyBudget, strategy: Strategy): RoundStep {
  const noise = budget.distributed!;
  const deviceVariance = noise.variance / noise.minSurvivors;
  const bits = spec.bits as 8 | 16;
  const inputLength = secureInputLength(s.lengths);
  const noiseRng: Rng = createRng(deriveSeed('privacy-skellam', population.seed, spec.privacy.epsilon));
  return async (global, round) => {
    let draws = 1;
    let cohort = sampleCohort(population, round, draws);
    while (cohort.length < noise.minSurvivors) cohort = sampleCohort(population, round, ++draws);
    const w = distributedRingBits(bits, cohort.length, deviceVariance);
    const sum = newRingVector(w, inputLength);
    const norms: number[] = [];
    let trainMs = 0;
    let encodeMs = 0;
    for (const user of cohort) {
      const t0 = performance.now();
      const delta = await trainUser(s, population, user, global, round);
      const t1 = performance.now();
      norms.push(l2Norm(delta));
      // A device seen for the first time: no quantization residual carried in (the simulated users keep no state between rounds).
      const input = encodeDistributedInput(delta, {
        params: noise.params,
        clipNorm: spec.privacy.clipNorm,
        variance: deviceVariance,
        ringBits: w,
        residual: s.lengths.map((n) => new Float32Array(n)),
        rng: createRng(deriveSeed('privacy-rounding', population.seed, user, round)),
        noiseRng,
      });
      addInto(sum, fromLevels(input, w), w);
      trainMs += t1 - t0;
      encodeMs += performance.now() - t1;
    }
    const mean = decodeDistributedSum(sum, { lengths: s.lengths, ringBits: w, step: noise.params.step, denominator: spec.clientsPerRound });
    const clipped = norms.filter((n) => n > spec.privacy.clipNorm).length;
    const point = { round, participants: cohort.length, draws, medianNorm: median(norms), clipped, ringBits: w, plainRingBits: ringBits(bits, cohort.length) };
    return { global: await strategy.step(global, mean, round), point, trainMs, encodeMs };
  };
}

export async function runPrivacyCell(population: Population, run: RunSpec): Promise<RunResult> {
  const started = performance.now();
  const s = await (setting = setUp(population));
  const spec = specFor(population, run);
  const parameters = countParameters(s.initial);
  const budget = PrivacyBudget.of(spec, parameters);
  const noiseRng = createRng(deriveSeed('privacy-gaussian', population.seed, run.epsilon));
  const strategy = createStrategy(spec, { budget, rng: noiseRng });
  const step = run.mode === 'distributed' ? distributedRound(s, population, spec, budget!, strategy) : plainRound(s, population, run, strategy);
  const label = run.mode === 'off' ? 'no DP' : `${run.mode} ε=${run.epsilon}`;
  let global = s.initial;
  let trainMs = 0;
  let encodeMs = 0;
  const curve: RoundPoint[] = [];
  for (let round = 1; round <= population.rounds; round++) {
    const stepped = await step(global, round);
    global = stepped.global;
    trainMs += stepped.trainMs;
    encodeMs += stepped.encodeMs;
    const { accuracy, loss } = await accuracyOf(s, global, s.curveTest);
    curve.push({ ...stepped.point, accuracy, loss, epsilon: budget ? budget.epsilonAfter(round) : null });
    if (round % 5 === 0 || round === population.rounds) {
      const elapsed = ((performance.now() - started) / 1000).toFixed(0);
      process.stderr.write(`  ${label}: round ${round}/${population.rounds}, ${(accuracy * 100).toFixed(1)} % (${elapsed} s)\n`);
    }
  }
  const final = await accuracyOf(s, global, s.test);
  const ran = strategy.report();
  const d = budget?.distributed;
  const widest = curve.reduce((a, p) => Math.max(a, p.ringBits ?? 0), 0);
  const plainBits = curve.reduce((a, p) => Math.max(a, p.plainRingBits ?? 0), 0);
  const ring = widest > 0 ? { bits: widest, plainBits, bytesPerParameter: ringBytesPerParameter(s.lengths, widest), plainBytesPerParameter: ringBytesPerParameter(s.lengths, plainBits) } : null;
  return {
    run,
    otherWidth: d ? otherWidth(population, run, parameters, s.lengths) : null,
    strategy: run.mode === 'distributed' ? `dp-distributed(sum) → ${ran.optimizer}` : `${ran.combine} → ${ran.optimizer}`,
    noiseMultiplier: budget ? budget.noiseMultiplier : null,
    noiseStd: budget ? noiseStdOf(budget, spec) : null,
    spent: budget ? budget.epsilonAfter(population.rounds) : null,
    variance: d ? d.variance : null,
    step: d ? d.params.step : null,
    parameters,
    ring,
    curve,
    finalAccuracy: final.accuracy,
    finalLoss: final.loss,
    wallMs: performance.now() - started,
    trainMs,
    encodeMs,
  };
}

function noiseStdOf(budget: PrivacyBudget, spec: TaskSpec): number {
  const m = spec.clientsPerRound;
  const d = budget.distributed;
  if (!d) return (budget.central!.updateNoiseMultiplier * spec.privacy.clipNorm) / m;
  return (d.params.step * Math.sqrt((m * d.variance) / d.minSurvivors)) / m;
}

/** Rounding adds √d levels to the sensitivity l2 = C/step + √d; finer levels shrink that share, at the cost of a wider ring. */
function otherWidth(population: Population, run: RunSpec, parameters: number, lengths: readonly number[]): OtherWidth {
  const bits = run.bits === 8 ? 16 : 8;
  const spec = specFor(population, { ...run, bits });
  const budget = PrivacyBudget.of(spec, parameters)!;
  const { variance, minSurvivors } = budget.distributed!;
  const ringBits = distributedRingBits(bits, population.cohort, variance / minSurvivors);
  return { bits, noiseStd: noiseStdOf(budget, spec), ringBits, bytesPerParameter: ringBytesPerParameter(lengths, ringBits) };
}

/** Bytes per model parameter of one device's upload in a ring of w bits (its input carries one extra word per tensor). */
function ringBytesPerParameter(lengths: readonly number[], w: number): number {
  return ringWireBytes(secureInputLength(lengths), w) / lengths.reduce((a, b) => a + b, 0);
}

serveTasks<PrivacyTask>(parentPort, (task) => (task.kind === 'calibrate' ? calibrate(task.population) : runPrivacyCell(task.population, task.run)));
