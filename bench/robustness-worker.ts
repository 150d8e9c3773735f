import { parentPort } from 'node:worker_threads';
import type * as tfl from '@tensorflow/tfjs-layers';
import { Trainer } from '../client/trainer.ts';
import { activateNodeBackend } from '../client/node/tf.ts';
import { folderFiles } from '../node/dataset-files.ts';
import { minimumUpdates } from '../server/strategies/combine/index.ts';
import { createStrategy } from '../server/strategies/index.ts';
import type { ClientUpdate } from '../server/strategies/strategy.ts';
import { serveTasks } from '../server/ts-worker.ts';
import type { LabelledSet } from '../shared/data/dataset.ts';
import { FASHION_MNIST_SCHEMA, loadFashionMnist } from '../shared/data/fashion-mnist.ts';
import { demoShard } from '../shared/data/shards.ts';
import { subtractWeights, type Weights } from '../shared/ml/aggregate.ts';
import { craftUpdates, flipLabels, type AttackName } from '../shared/ml/attacks.ts';
import { evaluationSums } from '../shared/ml/evaluate.ts';
import { DEFAULT_MODELS } from '../shared/ml/model-spec.ts';
import { buildModel, readWeights, writeWeights } from '../shared/ml/models.ts';
import { objectiveOf } from '../shared/ml/objective.ts';
import { withTaskDefaults, type Aggregation, type TaskModel, type TaskSpec } from '../shared/protocol/task.ts';
import { createRng, deriveSeed, shuffleInPlace } from '../shared/random.ts';

/**
 * One cell of the robustness grid, in a worker thread of its own: an in-process federated
 * run (every client every round, real TF.js training, the product's strategy) under one
 * attack and one combine rule.
 */

/** Fashion-MNIST's dense model: two hidden layers of 200 (199,210 parameters). */
const TASK: TaskModel = { model: DEFAULT_MODELS.mlp, data: FASHION_MNIST_SCHEMA };
const OBJECTIVE = objectiveOf(TASK.data);

/** What every cell shares: the population, the data and the seed. */
export interface Population {
  clients: number;
  /** Byzantine clients when a cell attacks (and the f robust rules are told to withstand). */
  attackers: number;
  rounds: number;
  alpha: number;
  seed: number;
  /** The first N training images are partitioned (the task field of that name). */
  trainLimit: number;
  /** Per-round accuracy is read on the first N test images; the final one on all 10,000. */
  curveTestLimit: number;
  dataDir: string;
}

export interface CellTask {
  population: Population;
  attack: AttackName | 'none';
  aggregation: Partial<Aggregation>;
}

export interface RoundPoint {
  round: number;
  accuracy: number;
  /** Attackers and honest clients the rule left out of this round's step. */
  attackersDiscarded: number;
  honestDiscarded: number;
  /** Updates with NaN or ±∞, refused as the upload check refuses them. */
  rejected: number;
}

export interface CellResult {
  attack: AttackName | 'none';
  rule: string;
  /** What the strategy reported running, e.g. "multi-krum → fedavg". */
  strategy: string;
  attackerIds: number[];
  curve: RoundPoint[];
  finalAccuracy: number;
  finalLoss: number;
  wallMs: number;
  trainMs: number;
  combineMs: number;
}

/** The clients that attack: a seeded draw, the same in every cell. */
export function attackerIds(population: Population): number[] {
  const order = Array.from({ length: population.clients }, (_, i) => i);
  return shuffleInPlace(order, createRng(deriveSeed('robustness-attackers', population.seed))).slice(0, population.attackers).sort((a, b) => a - b);
}

function specFor(population: Population, aggregation: Partial<Aggregation>): TaskSpec {
  return withTaskDefaults({
    name: 'robustness bench',
    dataset: 'fashion-mnist',
    model: TASK.model,
    partition: { kind: 'dirichlet', alpha: population.alpha },
    shards: population.clients,
    clientsPerRound: population.clients,
    rounds: population.rounds,
    trainLimit: population.trainLimit,
    seed: population.seed,
    aggregation,
  });
}

/** A worker's data, models and round-1 updates, set up once for every cell it runs. */
interface Setting {
  key: string;
  shards: LabelledSet[];
  flipped: Map<number, LabelledSet>;
  test: LabelledSet;
  curveTest: LabelledSet;
  initial: Weights;
  trainers: Map<string, Trainer>;
  evaluator: tfl.LayersModel;
  /**
   * Round 1 starts every cell from the same seeded model, so a client's round-1 training is
   * the same computation in every cell (same weights, data and seed; TF.js on WASM is
   * deterministic): it is done once per worker. From round 2 the global models differ.
   */
  firstRound: Map<string, Trained>;
}

interface Trained {
  delta: Weights;
  samples: number;
}

let setting: Promise<Setting> | undefined;

async function setUp(population: Population): Promise<Setting> {
  const key = JSON.stringify(population);
  const current = await setting?.catch(() => undefined);
  if (current?.key === key) return current;
  await activateNodeBackend(TASK.model);
  const source = folderFiles(population.dataDir);
  const train = await loadFashionMnist(source, 'train', population.trainLimit);
  const test = await loadFashionMnist(source, 't10k');
  const spec = specFor(population, {});
  const shards = Array.from({ length: population.clients }, (_, c) => demoShard(train, spec, c));
  const flipped = new Map(attackerIds(population).map((c) => [c, flipLabels(shards[c]!, FASHION_MNIST_SCHEMA.labels.length)]));
  const n = population.curveTestLimit > 0 ? Math.min(test.n, population.curveTestLimit) : test.n;
  const curveTest = { ...test, x: test.x.subarray(0, n * test.features), y: test.y.subarray(0, n), n };
  const evaluator = await buildModel(TASK.model, TASK.data, population.seed);
  return { key, shards, flipped, test, curveTest, initial: readWeights(evaluator), trainers: new Map(), evaluator, firstRound: new Map() };
}

async function trainClient(s: Setting, spec: TaskSpec, client: number, flipped: boolean, global: Weights, round: number): Promise<Trained> {
  const key = `${client}:${flipped ? 'flipped' : 'true'}`;
  const memo = global === s.initial ? s.firstRound.get(key) : undefined;
  if (memo) return memo;
  let trainer = s.trainers.get(key);
  if (!trainer) {
    trainer = await Trainer.create(TASK, spec.seed);
    s.trainers.set(key, trainer);
  }
  const set = flipped ? s.flipped.get(client)! : s.shards[client]!;
  const result = await trainer.train(global, set, spec.hyper, deriveSeed('robustness-train', spec.seed, client, round));
  const trained = { delta: subtractWeights(result.weights, global), samples: result.samples };
  if (global === s.initial) s.firstRound.set(key, trained);
  return trained;
}

const allFinite = (w: Weights) => w.every((t) => t.every(Number.isFinite));

async function accuracyOf(s: Setting, global: Weights, set: LabelledSet) {
  writeWeights(s.evaluator, global);
  // A classification objective always scores both; the defaults only satisfy its Record type.
  const { accuracy = Number.NaN, loss = Number.NaN } = OBJECTIVE.metrics(await evaluationSums(s.evaluator, set, TASK.data));
  return { accuracy, loss };
}

/** Every client's upload for one round: honest clients' deltas, and what the attackers make of theirs. */
async function roundUpdates(s: Setting, spec: TaskSpec, attack: CellTask['attack'], attackers: readonly number[], global: Weights, round: number): Promise<ClientUpdate[]> {
  const trained: Trained[] = [];
  for (let c = 0; c < spec.shards; c++) trained.push(await trainClient(s, spec, c, attack === 'label-flip' && attackers.includes(c), global, round));
  const crafted =
    attack === 'none'
      ? []
      : craftUpdates(attack, attackers.map((c) => trained[c]!.delta), { clients: spec.shards, rng: createRng(deriveSeed('robustness-attack', spec.seed, round)) });
  return trained.map((t, c) => {
    const a = attackers.indexOf(c);
    return { clientId: String(c), delta: a < 0 ? t.delta : crafted[a]!, weight: t.samples };
  });
}

export async function runCell(task: CellTask): Promise<CellResult> {
  const started = performance.now();
  const { population, attack } = task;
  const s = await (setting = setUp(population));
  const spec = specFor(population, task.aggregation);
  const strategy = createStrategy(spec);
  const attackers = attack === 'none' ? [] : attackerIds(population);
  let global = s.initial;
  let trainMs = 0;
  let combineMs = 0;
  const curve: RoundPoint[] = [];
  for (let round = 1; round <= population.rounds; round++) {
    const t0 = performance.now();
    const updates = await roundUpdates(s, spec, attack, attackers, global, round);
    const t1 = performance.now();
    // As the server would: updates with NaN or ±∞ are refused, and a round with too few left is retried (here: the model stays).
    const accepted = updates.filter((u) => allFinite(u.delta));
    let discarded: string[] = [];
    if (accepted.length >= minimumUpdates(spec.aggregation)) {
      const combined = strategy.combine(accepted, round);
      discarded = combined.discarded;
      global = await strategy.step(global, combined.delta, round);
    }
    trainMs += t1 - t0;
    combineMs += performance.now() - t1;
    const attackersDiscarded = discarded.filter((id) => attackers.includes(Number(id))).length;
    const { accuracy } = await accuracyOf(s, global, s.curveTest);
    curve.push({ round, accuracy, attackersDiscarded, honestDiscarded: discarded.length - attackersDiscarded, rejected: updates.length - accepted.length });
    if (round % 5 === 0 || round === population.rounds) {
      const elapsed = ((performance.now() - started) / 1000).toFixed(0);
      process.stderr.write(`  ${attack} × ${spec.aggregation.rule}: round ${round}/${population.rounds}, ${(accuracy * 100).toFixed(1)} % (${elapsed} s)\n`);
    }
  }
  const final = await accuracyOf(s, global, s.test);
  const ran = strategy.report();
  return {
    attack,
    rule: spec.aggregation.rule,
    strategy: `${ran.combine} → ${ran.optimizer}`,
    attackerIds: attackers,
    curve,
    finalAccuracy: final.accuracy,
    finalLoss: final.loss,
    wallMs: performance.now() - started,
    trainMs,
    combineMs,
  };
}

serveTasks<CellTask>(parentPort, runCell);
