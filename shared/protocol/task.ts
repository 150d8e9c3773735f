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
    strategy: StrategyName,
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

/** A create-task request: every field but the name may be left to its default. */
export const TaskSpecInput = Type.Partial(TaskSpec, { additionalProperties: false });
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
