import { Type, type Static, type TLiteral, type TUnion } from 'typebox';
import { TributaryError } from '../errors.ts';
import { secureParameters } from '../secagg/parameters.ts';

/** What a task trains, on what data, and how its rounds run. One schema for REST and storage. */

/** The values a union of literals allows, read from the schema: CLI choices and form options follow it. */
export function choicesOf<T extends string | number>(schema: TUnion<TLiteral<T>[]>): T[] {
  return schema.anyOf.map((literal) => literal.const);
}

export const ModelPreset = Type.Union([Type.Literal('fmnist-mlp'), Type.Literal('fmnist-cnn')]);
export type ModelPreset = Static<typeof ModelPreset>;

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
 * How the demo training set is split among clients: evenly at random, with Dirichlet label
 * skew, or at random into shards of given relative sizes.
 */
export const Partition = Type.Union([
  Type.Object({ kind: Type.Literal('iid') }, { additionalProperties: false }),
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

export const TaskSpec = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 120 }),
    model: ModelPreset,
    dataset: Type.Literal('fashion-mnist'),
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
    /** Held-out images evaluated after each round; 0 means the whole test set. */
    testLimit: Type.Integer({ minimum: 0 }),
    seed: Type.Integer({ minimum: 0, maximum: 0xffff_ffff }),
  },
  { additionalProperties: false },
);
export type TaskSpec = Static<typeof TaskSpec>;

/** A create-task request: every field, nested ones included, may be left to its default. */
const closed = { additionalProperties: false } as const;
export const TaskSpecInput = Type.Partial(
  Type.Object({ ...TaskSpec.properties, hyper: Type.Partial(Hyper, closed), aggregation: Type.Partial(Aggregation, closed), privacy: Type.Partial(Privacy, closed) }),
  closed,
);
export type TaskSpecInput = Static<typeof TaskSpecInput>;

export const TASK_DEFAULTS: Omit<TaskSpec, 'name'> = {
  model: 'fmnist-mlp',
  dataset: 'fashion-mnist',
  partition: { kind: 'iid' },
  shards: 10,
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
  hyper: { localEpochs: 1, batchSize: 64, learningRate: 0.02, optimizer: 'momentum', proximalMu: 0 },
  openEnrollment: false,
  roundDeadlineMs: 120_000,
  trainLimit: 0,
  testLimit: 0,
  seed: 1,
};

export function withTaskDefaults(input: TaskSpecInput): TaskSpec {
  const spec = {
    ...TASK_DEFAULTS,
    name: input.name ?? 'untitled',
    ...input,
    hyper: { ...TASK_DEFAULTS.hyper, ...input.hyper },
    aggregation: { ...TASK_DEFAULTS.aggregation, ...input.aggregation },
    privacy: { ...TASK_DEFAULTS.privacy, ...input.privacy },
  } as TaskSpec;
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
  accuracy: Type.Number(),
  loss: Type.Number(),
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
