import { Type, type Static, type TLiteral, type TUnion } from 'typebox';
import { TributaryError } from '../errors.ts';
import { secureParameters } from '../secagg/parameters.ts';
import { DataSchema, checkDataSchema, targetOf } from '../data/schema.ts';
import { BUILTIN_DATASETS, DEFAULT_DATASET, isBuiltin } from '../data/builtin.ts';
import { ModelSpec } from '../ml/model-spec.ts';
import { ModelUpload } from './model-upload.ts';

/** What a task trains, on what data, and how its rounds run. One schema for REST and storage. */

/** The values a union of literals allows, read from the schema: CLI choices and form options follow it. */
export function choicesOf<T extends string | number>(schema: TUnion<TLiteral<T>[]>): T[] {
  return schema.anyOf.map((literal) => literal.const);
}

export const StrategyName = Type.Union([Type.Literal('fedavg'), Type.Literal('fedavgm'), Type.Literal('fedadam'), Type.Literal('fedyogi')]);
export type StrategyName = Static<typeof StrategyName>;

/** How a round's updates are combined into one step (server/strategies/combine/: one file per rule). */
export const CombineRuleName = Type.Union([
  Type.Literal('mean'),
  Type.Literal('median'),
  Type.Literal('trimmed-mean'),
  Type.Literal('krum'),
  Type.Literal('multi-krum'),
  Type.Literal('bulyan'),
  Type.Literal('centered-clipping'),
]);
export type CombineRuleName = Static<typeof CombineRuleName>;

/** Rules that must read every update at once: they cannot run on a secure sum (nor stream). */
export const RULES_NEEDING_EVERY_UPDATE: readonly CombineRuleName[] = ['median', 'trimmed-mean', 'krum', 'multi-krum', 'bulyan', 'centered-clipping'];

export const Aggregation = Type.Object(
  {
    rule: CombineRuleName,
    /** Trimmed mean: the fraction β of values dropped from each end of every coordinate, 0 ≤ β < 0.5. */
    trim: Type.Number({ minimum: 0, maximum: 1 }),
    /** Krum, Multi-Krum, Bulyan: f, how many attacking clients per round the rule withstands. */
    byzantine: Type.Integer({ minimum: 0, maximum: 10_000 }),
    /** Multi-Krum: how many of the best-scored updates are averaged; 0 = n − f. */
    select: Type.Integer({ minimum: 0, maximum: 10_000 }),
    /** Centered clipping: radius τ of the clip around the last step; 0 = the median distance of the round's updates. */
    radius: Type.Number({ minimum: 0, maximum: 1e6 }),
    /** Centered clipping: iterations L. */
    iterations: Type.Integer({ minimum: 1, maximum: 100 }),
    /** L2 bound on each update; 0 = none. Plain rounds: the server clips; secure rounds: each device clips before masking. */
    normBound: Type.Number({ minimum: 0, maximum: 1e6 }),
  },
  { additionalProperties: false },
);
export type Aggregation = Static<typeof Aggregation>;

export const PrivacyMode = Type.Union([Type.Literal('off'), Type.Literal('central'), Type.Literal('distributed')]);
export type PrivacyMode = Static<typeof PrivacyMode>;

/**
 * User-level differential privacy of the published models. central (DP-FedAvg, McMahan et al.
 * 2018; plain rounds): the server clips each update and adds Gaussian noise to the sum.
 * distributed (secure rounds): each device clips, and adds Skellam noise to its quantized
 * update before masking, so no sum without noise ever exists. Clients are Poisson-sampled
 * at rate q = clientsPerRound / population, the amplification the accountant counts.
 */
export const Privacy = Type.Object(
  {
    mode: PrivacyMode,
    /** Target ε of the whole task; the task stops before a round would spend more. */
    epsilon: Type.Number({ maximum: 1e4 }),
    delta: Type.Number({ exclusiveMinimum: 0, maximum: 0.1 }),
    /** z: noise standard deviation over the clip norm; 0 = the least that keeps all `rounds` rounds within (ε, δ). */
    noiseMultiplier: Type.Number({ minimum: 0, maximum: 1e4 }),
    /** C: each update's L2 clip (with targetQuantile > 0, its starting value). */
    clipNorm: Type.Number({ exclusiveMinimum: 0, maximum: 1e6 }),
    /** Central: adaptive clipping (Andrew et al. 2021) tracks this quantile of update norms; 0 = C stays fixed. */
    targetQuantile: Type.Number({ minimum: 0, maximum: 1 }),
    /** Users a round's clients are sampled from; 0 = the task's shards. */
    population: Type.Integer({ minimum: 0, maximum: 100_000_000 }),
  },
  { additionalProperties: false },
);
export type Privacy = Static<typeof Privacy>;

/**
 * How a built-in training set is split among demo clients: evenly at random, with Dirichlet
 * label skew, at random into shards of given relative sizes, or by the data's own sources
 * (islands, topics), as it is split in real life.
 */
export const Partition = Type.Union([
  Type.Object({ kind: Type.Literal('iid') }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('source') }, { additionalProperties: false }),
  Type.Object(
    { kind: Type.Literal('dirichlet'), alpha: Type.Number({ exclusiveMinimum: 0, maximum: 1e6 }) },
    { additionalProperties: false },
  ),
  /** Heavy and light shards: relative sizes, one per shard (IID content). GPU nodes are handed the heavy ones. */
  Type.Object(
    { kind: Type.Literal('sizes'), sizes: Type.Array(Type.Number({ exclusiveMinimum: 0, maximum: 1e6 }), { minItems: 1, maxItems: 10_000 }) },
    { additionalProperties: false },
  ),
]);

export type PartitionSpec = Static<typeof Partition>;

/** Bits per value of an update: quantized levels, or 32 for plain float32. */
export const UpdateBits = Type.Union([Type.Literal(2), Type.Literal(4), Type.Literal(8), Type.Literal(16), Type.Literal(32)]);
export type UpdateBits = Static<typeof UpdateBits>;

export const LocalOptimizer = Type.Union([Type.Literal('sgd'), Type.Literal('momentum'), Type.Literal('adam')]);
export type LocalOptimizer = Static<typeof LocalOptimizer>;

export const TrainingMode = Type.Union([Type.Literal('sync'), Type.Literal('async')]);
export type TrainingMode = Static<typeof TrainingMode>;

export const Scheduling = Type.Union([Type.Literal('capability'), Type.Literal('uniform')]);
export type Scheduling = Static<typeof Scheduling>;

export const Hyper = Type.Object(
  {
    localEpochs: Type.Integer({ minimum: 1, maximum: 100 }),
    batchSize: Type.Integer({ minimum: 1, maximum: 4096 }),
    learningRate: Type.Number({ exclusiveMinimum: 0, maximum: 10 }),
    optimizer: LocalOptimizer,
    /** FedProx (Li et al. 2020): μ of the proximal term μ/2·‖w − w_global‖² added to the local loss; 0 = off. */
    proximalMu: Type.Number({ minimum: 0, maximum: 100 }),
  },
  { additionalProperties: false },
);
export type Hyper = Static<typeof Hyper>;

/**
 * Federated evaluation: every `every` rounds, each participant evaluates the global model it
 * was sent on the `holdout` fraction of its own data it never trains on, with probability
 * `fraction`, and reports metric sums with its update (in a secure task, inside the masked
 * sum). 0 = never.
 */
export const Evaluation = Type.Object(
  {
    every: Type.Integer({ minimum: 0, maximum: 100_000 }),
    fraction: Type.Number({ minimum: 0, maximum: 1 }),
    holdout: Type.Number({ minimum: 0, maximum: 0.5 }),
  },
  { additionalProperties: false },
);
export type Evaluation = Static<typeof Evaluation>;

/** Devices bring their own data; no built-in set backs the task. */
export const OWN_DATA = 'own';

export const TaskSpec = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 120 }),
    model: ModelSpec,
    /** What the devices' data looks like; it picks the preprocessing, the loss and the metrics. */
    data: DataSchema,
    /**
     * A built-in data set (demo shards for devices without data of their own, and the
     * server's held-out test set), or "own": devices bring their data, and only federated
     * evaluation scores the model.
     */
    dataset: Type.String({ minLength: 1, maxLength: 64 }),
    partition: Partition,
    /** How many shards the training set is cut into; joining clients are handed one each. */
    shards: Type.Integer({ minimum: 1, maximum: 10_000 }),
    rounds: Type.Integer({ minimum: 1, maximum: 100_000 }),
    clientsPerRound: Type.Integer({ minimum: 1, maximum: 10_000 }),
    /** Fewest accepted updates for a round to count; fewer and the round is retried. */
    minUpdates: Type.Integer({ minimum: 1, maximum: 10_000 }),
    bits: UpdateBits,
    /** Per-tensor clip at this many RMS; the rest goes to the client's error-feedback residual. */
    clipSigma: Type.Number({ exclusiveMinimum: 0 }),
    /** The server optimizer: how the combined step moves the model. */
    strategy: StrategyName,
    aggregation: Aggregation,
    privacy: Privacy,
    /**
     * sync: rounds of clientsPerRound participants, late updates discarded. async: FedBuff
     * (Nguyen et al. 2022): clientsPerRound clients train at once, every bufferSize updates
     * make one server step ("round"), stale updates count with weight 1/√(1 + staleness).
     */
    mode: TrainingMode,
    /** Async: updates per server step (K); 0 = half of clientsPerRound, at least 1. */
    bufferSize: Type.Integer({ minimum: 0, maximum: 10_000 }),
    /** Async: updates more model versions behind than this are discarded. */
    maxStaleness: Type.Integer({ minimum: 0, maximum: 1_000 }),
    /**
     * capability: the scheduler over-selects 30 % to absorb drop-outs and moves work from
     * slow to fast devices: the sample visits uniform work would train, in the least time
     * their measured speeds allow (each up to twice its share, in whole batches, never
     * longer than uniform work nor past 80 % of the deadline). uniform: every participant
     * trains localEpochs over its data (reproducible).
     */
    scheduling: Scheduling,
    /** When tasks share devices, a higher priority gets them first. */
    priority: Type.Integer({ minimum: 0, maximum: 100 }),
    /** Secure aggregation (SecAgg+): the server learns only the sum of the updates. */
    secure: Type.Boolean(),
    /** Secure rounds: shares needed to rebuild a client's secrets, of its neighbours + 1 holders; 0 = a majority of them. */
    threshold: Type.Integer({ minimum: 0, maximum: 255 }),
    /** Secure rounds: neighbours each client masks with; 0 = ≈ 2·log2 n, ≥ n − 1 = every other client (classic SecAgg). */
    neighbours: Type.Integer({ minimum: 0, maximum: 254 }),
    hyper: Hyper,
    /** Any device may enroll itself (rate-limited), e.g. for a public contribute page; otherwise it needs a token. */
    openEnrollment: Type.Boolean(),
    roundDeadlineMs: Type.Integer({ minimum: 1_000, maximum: 86_400_000 }),
    /** Only the first N training samples are partitioned (quick tests); 0 means all. */
    trainLimit: Type.Integer({ minimum: 0 }),
    /** Held-out samples of a built-in test set the server evaluates after each round; 0 means all. */
    testLimit: Type.Integer({ minimum: 0 }),
    evaluation: Evaluation,
    seed: Type.Integer({ minimum: 0, maximum: 0xffff_ffff }),
  },
  { additionalProperties: false },
);
export type TaskSpec = Static<typeof TaskSpec>;

/** What builds a task's model: its architecture (or topology) and its data schema. */
export type TaskModel = Pick<TaskSpec, 'model' | 'data'>;

/** A create-task request: every field, nested ones included, may be left to its default. */
const closed = { additionalProperties: false } as const;
export const TaskSpecInput = Type.Partial(
  Type.Object({
    ...TaskSpec.properties,
    /** A built-in architecture, a stored topology, or an uploaded model.json and weights (checked on the server). */
    model: Type.Union([ModelSpec, ModelUpload]),
    hyper: Type.Partial(Hyper, closed),
    aggregation: Type.Partial(Aggregation, closed),
    privacy: Type.Partial(Privacy, closed),
    evaluation: Type.Partial(Evaluation, closed),
  }),
  closed,
);
export type TaskSpecInput = Static<typeof TaskSpecInput>;

const DEFAULT_BUILTIN = BUILTIN_DATASETS[DEFAULT_DATASET];

export const TASK_DEFAULTS: Omit<TaskSpec, 'name'> = {
  model: DEFAULT_BUILTIN.model,
  data: DEFAULT_BUILTIN.schema,
  dataset: DEFAULT_DATASET,
  partition: DEFAULT_BUILTIN.defaults.partition,
  shards: DEFAULT_BUILTIN.defaults.shards,
  rounds: 20,
  clientsPerRound: 10,
  minUpdates: 1,
  bits: 8,
  clipSigma: 6,
  strategy: 'fedavg',
  aggregation: { rule: 'mean', trim: 0.1, byzantine: 0, select: 0, radius: 0, iterations: 3, normBound: 0 },
  privacy: { mode: 'off', epsilon: 8, delta: 1e-5, noiseMultiplier: 0, clipNorm: 1, targetQuantile: 0, population: 0 },
  mode: 'sync',
  bufferSize: 0,
  scheduling: 'capability',
  priority: 0,
  maxStaleness: 10,
  secure: false,
  threshold: 0,
  neighbours: 0,
  hyper: { ...DEFAULT_BUILTIN.defaults.hyper, proximalMu: 0 },
  openEnrollment: false,
  roundDeadlineMs: 120_000,
  trainLimit: 0,
  testLimit: 0,
  evaluation: { every: 1, fraction: 1, holdout: 0.2 },
  seed: 1,
};

/**
 * A task from what the user gave: a built-in data set brings its schema, model, partition
 * and hyper-parameters, each of which the user's own settings override.
 */
export function withTaskDefaults(input: TaskSpecInput): TaskSpec {
  const dataset = input.dataset ?? (input.data ? OWN_DATA : DEFAULT_DATASET);
  if (dataset !== OWN_DATA && !isBuiltin(dataset)) throw new TributaryError('BAD_REQUEST', `dataset "${dataset}" is neither built in (${Object.keys(BUILTIN_DATASETS).join(', ')}) nor "${OWN_DATA}"`);
  const builtin = isBuiltin(dataset) ? BUILTIN_DATASETS[dataset] : undefined;
  const base = builtin ? { model: builtin.model, data: builtin.schema, partition: builtin.defaults.partition, shards: builtin.defaults.shards } : {};
  const spec = {
    ...TASK_DEFAULTS,
    ...base,
    name: input.name ?? 'untitled',
    ...input,
    dataset,
    hyper: { ...TASK_DEFAULTS.hyper, ...builtin?.defaults.hyper, ...input.hyper },
    aggregation: { ...TASK_DEFAULTS.aggregation, ...input.aggregation },
    privacy: { ...TASK_DEFAULTS.privacy, ...input.privacy },
    evaluation: { ...TASK_DEFAULTS.evaluation, ...input.evaluation },
  } as TaskSpec;
  if (builtin && input.data && JSON.stringify(input.data) !== JSON.stringify(builtin.schema)) {
    throw new TributaryError('SCHEMA_INVALID', `the built-in data set ${dataset} has its own schema: leave data out, or use dataset "${OWN_DATA}"`);
  }
  checkDataSchema(spec.data);
  if (spec.partition.kind === 'dirichlet' && targetOf(spec.data) === 'regression') throw new TributaryError('BAD_REQUEST', 'a Dirichlet label split needs class labels; this task is a regression');
  if (spec.partition.kind === 'source' && !builtin) throw new TributaryError('BAD_REQUEST', 'a by-source partition splits a built-in data set; devices with their own data are split already');
  // Masked sums add integers: float32 updates cannot be summed securely.
  if (spec.secure && spec.bits === 32) throw new TributaryError('BAD_REQUEST', 'secure aggregation needs quantized updates (bits 2, 4, 8 or 16)');
  // A masked sum needs one cohort that masks together; FedBuff's buffer fills with whoever finishes first.
  if (spec.secure && spec.mode === 'async') throw new TributaryError('BAD_REQUEST', 'secure aggregation needs sync rounds (see the README on async mode)');
  // The round's own participants decide k; a full round's k is the one to check an explicit threshold against.
  if (spec.secure && spec.threshold > 0) secureParameters(Math.max(3, spec.clientsPerRound), spec.neighbours, spec.threshold);
  if (spec.partition.kind === 'sizes' && spec.partition.sizes.length !== spec.shards) {
    throw new TributaryError('BAD_REQUEST', `${spec.partition.sizes.length} shard sizes for ${spec.shards} shards`);
  }
  return spec;
}

/** Differential privacy: q, the chance that each of the task's users takes part in a round. */
export function privacySampleRate(spec: TaskSpec): number {
  return Math.min(1, spec.clientsPerRound / populationOf(spec));
}

/** Differential privacy: the users a round's clients are sampled from. */
export function populationOf(spec: TaskSpec): number {
  return spec.privacy.population > 0 ? spec.privacy.population : spec.shards;
}

/**
 * Whether the task's devices evaluate federatedly (and so hold data out of training): sync
 * tasks without differential privacy (the accountant counts the model's releases, not metric
 * sums; async uploads score different versions, which do not add up).
 */
export function evaluatesFederatedly(spec: TaskSpec): boolean {
  return spec.evaluation.every > 0 && spec.evaluation.fraction > 0 && spec.mode === 'sync' && spec.privacy.mode === 'off';
}

/** Async mode: updates per server step. */
export function bufferSizeOf(spec: TaskSpec): number {
  return spec.bufferSize > 0 ? spec.bufferSize : Math.max(1, Math.floor(spec.clientsPerRound / 2));
}

/** created → running ⇄ paused; running → completed (all rounds) or stopped (for good). */
export const TaskStatus = Type.Union([
  Type.Literal('created'),
  Type.Literal('running'),
  Type.Literal('paused'),
  Type.Literal('stopped'),
  Type.Literal('completed'),
]);
export type TaskStatus = Static<typeof TaskStatus>;

export const TaskRecord = Type.Object({
  id: Type.Integer(),
  spec: TaskSpec,
  status: TaskStatus,
  /** Last completed round; 0 before the first. It is also the global model's version. */
  completedRounds: Type.Integer(),
  createdAt: Type.String(),
});
export type TaskRecord = Static<typeof TaskRecord>;

/** Scores of one model version, summed over the devices that evaluated it on their held-out data. */
export const FederatedMetrics = Type.Object({
  version: Type.Integer({ minimum: 0 }),
  /** Devices that evaluated, and the held-out samples they scored. */
  clients: Type.Integer({ minimum: 0 }),
  samples: Type.Integer({ minimum: 0 }),
  metrics: Type.Record(Type.String(), Type.Number()),
});
export type FederatedMetrics = Static<typeof FederatedMetrics>;

export const RoundRecord = Type.Object({
  taskId: Type.Integer(),
  round: Type.Integer(),
  participants: Type.Integer(),
  /** Left the round before their update counted. */
  dropped: Type.Integer(),
  /** Still training or uploading at the deadline: discarded in sync mode. */
  late: Type.Integer(),
  rejected: Type.Integer(),
  samples: Type.Integer(),
  /** Mean model versions the counted updates were behind (async mode; 0 in sync rounds). */
  staleness: Type.Number(),
  /** The server's evaluation on its held-out set; null without one (or, for accuracy, in a regression). */
  accuracy: Type.Union([Type.Number(), Type.Null()]),
  loss: Type.Union([Type.Number(), Type.Null()]),
  /** Every score of the server's evaluation, by the task's objective; empty without a held-out set. */
  metrics: Type.Record(Type.String(), Type.Number()),
  /** Federated evaluation reported in this round: of the model version the participants were sent. */
  federated: Type.Union([FederatedMetrics, Type.Null()]),
  uploadBytes: Type.Integer(),
  uploadBytesPerParam: Type.Number(),
  durationMs: Type.Integer(),
  finishedAt: Type.String(),
  /** What combined and applied the updates, e.g. "norm-bound(median) → fedavg". */
  rule: Type.String(),
  /** Clients whose updates the rule left out of the step. */
  discarded: Type.Array(Type.String()),
  /** Differentially private tasks: ε spent by the end of this round (at the task's δ); null otherwise. */
  epsilon: Type.Union([Type.Number(), Type.Null()]),
  /** Differentially private tasks: the clip norm C this round used (it adapts under a target quantile). */
  clipNorm: Type.Union([Type.Number(), Type.Null()]),
});
export type RoundRecord = Static<typeof RoundRecord>;

/** One participant of a completed round: its share of work and how it went. */
export const ParticipantRecord = Type.Object({
  clientId: Type.String(),
  kind: Type.String(),
  backend: Type.String(),
  /** The scheduler's speed estimate when it planned the round, samples/s (0: unknown). */
  speed: Type.Number(),
  /** Sample visits it was asked to train; null: the task's full epochs. */
  budget: Type.Union([Type.Integer(), Type.Null()]),
  /** Distinct samples its counted update trained on (its FedAvg weight); 0 if none counted. */
  samples: Type.Integer(),
  /** From the round's start to its update's last chunk; null if none arrived. */
  elapsedMs: Type.Union([Type.Integer(), Type.Null()]),
  outcome: Type.Union([Type.Literal('delivered'), Type.Literal('late'), Type.Literal('dropped'), Type.Literal('rejected')]),
});
export type ParticipantRecord = Static<typeof ParticipantRecord>;

/** A differentially private task's budget, as `GET /api/tasks/:id/privacy` reports it. */
export const PrivacyStatus = Type.Object({
  mode: PrivacyMode,
  /** The task's target (ε, δ). */
  epsilon: Type.Number(),
  delta: Type.Number(),
  /** ε spent by the completed rounds. */
  spent: Type.Number(),
  /** Rounds the rest of the budget affords at this noise. */
  roundsLeft: Type.Integer(),
  /** z actually used (calibrated when the spec left it 0). */
  noiseMultiplier: Type.Number(),
  /** q: the chance each user takes part in a round. */
  sampleRate: Type.Number(),
  /** The guarantee in words, for the model card: unit, mechanism, accountant. */
  guarantee: Type.String(),
});
export type PrivacyStatus = Static<typeof PrivacyStatus>;
