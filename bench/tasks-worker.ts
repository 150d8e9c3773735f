import { parentPort } from 'node:worker_threads';
import { activateNodeBackend } from '../client/node/tf.ts';
import { Trainer } from '../client/trainer.ts';
import { createStrategy } from '../server/strategies/index.ts';
import type { ClientUpdate } from '../server/strategies/strategy.ts';
import { serveTasks } from '../server/ts-worker.ts';
import { decodeUpdate, encodeUpdate } from '../shared/codec/update-codec.ts';
import { cryptoReady, generateBoxKeyPair, openSealed, seal } from '../shared/crypto/sodium.ts';
import type { BuiltinName } from '../shared/data/builtin.ts';
import { concatSets } from '../shared/data/dataset.ts';
import { countParameters, subtractWeights, type Weights } from '../shared/ml/aggregate.ts';
import { buildModel, readWeights } from '../shared/ml/models.ts';
import type { Metrics } from '../shared/ml/objective.ts';
import { createRng, deriveSeed } from '../shared/random.ts';
import { benchSpec, loadTaskData, type TaskData, type TaskLimits } from './task-data.ts';

/**
 * One run of `bench tasks` in a worker thread of its own: a built-in task trained
 * federated (every client every round, the product's Trainer, 8-bit codec, sealing and
 * strategy, called in-process) or centrally on the pooled training rows of all clients for
 * as many sample visits.
 */

export interface TaskJob {
  kind: 'federated' | 'central';
  task: BuiltinName;
  clients: number;
  rounds: number;
  seed: number;
  limits: TaskLimits;
}

export interface RoundPoint {
  round: number;
  /** Sample visits so far (samples × local epochs, summed over clients and rounds). */
  visits: number;
  metrics: Metrics;
}

export interface JobResult {
  job: TaskJob;
  backend: string;
  parameters: number;
  shardSizes: number[];
  testRows: number;
  headline: { name: string; higherIsBetter: boolean };
  /** Federated: the global model's scores after each round; central: empty. */
  curve: RoundPoint[];
  final: Metrics;
  /** Mean loss on the training rows over the last epoch's steps (federated: of the last round's clients, weighted by samples). */
  trainingLoss: number;
  visits: number;
  wallMs: number;
  /** Of wallMs, the rounds (federated: training, codec, combining and step) or the central run; scoring and set-up left out. */
  trainMs: number;
}

interface Setting {
  key: string;
  backend: string;
  data: TaskData;
  initial: Weights;
  /** Scores global models on the test rows (its own model, weights written per call). */
  evaluator: Trainer;
}

let setting: Setting | undefined;

async function setUp(job: TaskJob): Promise<Setting> {
  const key = JSON.stringify([job.task, job.clients, job.rounds, job.seed, job.limits]);
  if (setting?.key === key) return setting;
  setting?.evaluator.dispose();
  const spec = benchSpec(job.task, job.clients, job.rounds, job.seed);
  const backend = await activateNodeBackend(spec.model);
  await cryptoReady();
  const data = await loadTaskData(job.task, spec, job.limits);
  // The initial global model, as the server builds it from the task's seed.
  const model = await buildModel(spec.model, spec.data, spec.seed);
  setting = { key, backend, data, initial: readWeights(model), evaluator: new Trainer(model, spec.data) };
  return setting;
}

async function score(s: Setting, weights: Weights): Promise<Metrics> {
  return s.evaluator.objective.metrics(await s.evaluator.evaluate(weights, s.data.test));
}

/**
 * Each round, every client trains from the global model on its shard, encodes its delta at
 * the task's bits with its own error-feedback residual and rounding stream (as RoundRunner
 * does) and seals it to the round's aggregator key; the "server" opens and decodes it as
 * plain-round.ts does, combines by samples and steps.
 */
async function federated(s: Setting): Promise<Pick<JobResult, 'curve' | 'trainingLoss' | 'visits' | 'trainMs'>> {
  const { spec, shards } = s.data;
  const strategy = createStrategy(spec, { budget: undefined });
  const lengths = s.initial.map((t) => t.length);
  const clients = await Promise.all(
    shards.map(async (set, c) => ({
      set,
      trainer: await Trainer.create(spec, spec.seed),
      residual: lengths.map((n) => new Float32Array(n)),
      rounding: createRng(deriveSeed('tasks-rounding', spec.seed, c)),
    })),
  );
  let global = s.initial;
  let visits = 0;
  let trainMs = 0;
  let trainingLoss = Number.NaN;
  const curve: RoundPoint[] = [];
  try {
    for (let round = 1; round <= spec.rounds; round++) {
      const t0 = performance.now();
      const aggregator = generateBoxKeyPair();
      const updates: ClientUpdate[] = [];
      let lossSum = 0;
      let samples = 0;
      for (const [c, client] of clients.entries()) {
        const trained = await client.trainer.train(global, client.set, spec.hyper, deriveSeed('tasks-train', spec.seed, c, round));
        lossSum += trained.loss * trained.samples;
        samples += trained.samples;
        const delta = subtractWeights(trained.weights, global);
        const sealed = seal(encodeUpdate(delta, { bits: spec.bits, clipSigma: spec.clipSigma, rng: client.rounding, residual: client.residual }), aggregator.publicKey);
        updates.push({ clientId: String(c), delta: decodeUpdate(openSealed(sealed, aggregator), lengths, spec.bits), weight: trained.samples });
        visits += trained.processed;
      }
      global = await strategy.step(global, strategy.combine(updates, round).delta, round);
      trainMs += performance.now() - t0;
      trainingLoss = lossSum / samples;
      curve.push({ round, visits, metrics: await score(s, global) });
      const headline = s.evaluator.objective.headline.name;
      process.stderr.write(`  ${spec.dataset} federated: round ${round}/${spec.rounds}, ${headline} ${curve.at(-1)!.metrics[headline]!.toFixed(4)}\n`);
    }
  } finally {
    for (const client of clients) client.trainer.dispose();
  }
  return { curve, trainingLoss, visits, trainMs };
}

/**
 * The same model from the same initial weights, trained on the pooled rows of all shards in
 * one continuous run (one optimizer, its state kept throughout) of rounds × local epochs
 * epochs: the federated run's sample visits, at the same batch size, optimizer and rate.
 */
async function central(s: Setting): Promise<Pick<JobResult, 'curve' | 'trainingLoss' | 'visits' | 'trainMs'> & { weights: Weights }> {
  const { spec, shards } = s.data;
  const pooled = concatSets(shards);
  const trainer = await Trainer.create(spec, spec.seed);
  try {
    const t0 = performance.now();
    const hyper = { ...spec.hyper, localEpochs: spec.hyper.localEpochs * spec.rounds };
    const trained = await trainer.train(s.initial, pooled, hyper, deriveSeed('tasks-central', spec.seed));
    return { curve: [], trainingLoss: trained.loss, visits: trained.processed, trainMs: performance.now() - t0, weights: trained.weights };
  } finally {
    trainer.dispose();
  }
}

export async function runTaskJob(job: TaskJob): Promise<JobResult> {
  const started = performance.now();
  const s = await setUp(job);
  const common = {
    job,
    backend: s.backend,
    parameters: countParameters(s.initial),
    shardSizes: s.data.shards.map((set) => set.n),
    testRows: s.data.test.n,
    headline: s.evaluator.objective.headline,
  };
  if (job.kind === 'central') {
    const { weights, ...run } = await central(s);
    return { ...common, ...run, final: await score(s, weights), wallMs: performance.now() - started };
  }
  const run = await federated(s);
  return { ...common, ...run, final: run.curve.at(-1)?.metrics ?? (await score(s, s.initial)), wallMs: performance.now() - started };
}

serveTasks<TaskJob>(parentPort, runTaskJob);
