import type * as tfl from '@tensorflow/tfjs-layers';
import { countParameters, type Weights } from '../../shared/ml/aggregate.ts';
import type { RunningSum } from '../../shared/ml/running-sum.ts';
import type { LabelledSet } from '../../shared/data/dataset.ts';
import { buildModel, readWeights, weightLengths, writeWeights } from '../../shared/ml/models.ts';
import { INITIAL_SECURE_CLIP } from '../../shared/codec/secure-codec.ts';
import type { FederatedMetrics, ParticipantRecord, RoundRecord, TaskRecord } from '../../shared/protocol/task.ts';
import type { Checkpoints } from './checkpoints.ts';
import type { RoundEvents } from './runner.ts';
import { evaluationSums, finiteMetrics } from '../../shared/ml/evaluate.ts';
import { objectiveOf, type Objective } from '../../shared/ml/objective.ts';
import type { Store } from '../store/store.ts';
import { PrivacyBudget } from '../privacy/budget.ts';
import { createStrategy } from '../strategies/index.ts';
import type { ClientUpdate, Combined, Strategy, UpdateFold } from '../strategies/strategy.ts';

/** What a round (or an async step) contributes: its updates (or their secure sum) and how it came about. */
export interface Contribution {
  /**
   * A streaming plain round hands over the fold it built as updates arrived; rules that need
   * every update (and async steps) get the updates; a secure round, the mean its sum gives;
   * a cluster round, the merged running sums of its processes (mean rule only).
   */
  input: { fold: UpdateFold } | { updates: readonly ClientUpdate[] } | { mean: Weights } | { sum: RunningSum };
  /** Secure rounds: each tensor's quantization range for the next round, read from the summed statistics. */
  clips?: number[];
  participants: number;
  dropped: number;
  late: number;
  rejected: number;
  samples: number;
  uploadBytes: number;
  /** Mean staleness (model versions behind) of the updates; 0 in sync rounds. */
  staleness: number;
  /** Time spent turning the collected updates into the mean update (unmasking included). */
  aggregationMs: number;
  /** When the round (or step) began, ms since epoch. */
  startedAt: number;
  /** Each participant's share of work and outcome, where the runner tracks them. */
  participantsDetail?: ParticipantRecord[];
  /** Federated evaluation the participants reported with their updates (of the version they were sent). */
  federated?: FederatedMetrics | null;
}

export interface GlobalModelOptions {
  store: Store;
  checkpoints: Checkpoints;
  events: RoundEvents;
  /** The server's own held-out set, read at each round (an operator may upload one later); none: only federated evaluation scores the model. */
  testSet: () => Promise<LabelledSet | undefined>;
  log: { info(fields: object, message: string): void };
  /** A cluster leader's fencing token: its checkpoints and records are refused once a newer leader writes the round. */
  fence?: number;
}

/**
 * A task's global model and everything that moves it: the server optimizer and its memory,
 * the secure rounds' clip ranges, the version. `advance` is the only way forward: it steps,
 * evaluates, checkpoints (model and server state together, atomically) and records the
 * round in one transaction, so a crash at any point loses nothing that was recorded.
 */
export class GlobalModel {
  readonly lengths: number[];
  private clipsNow: number[];
  private readonly strategy: Strategy;
  private weightsNow: Weights;
  /** A differentially private task's noise and accountant; undefined otherwise. */
  readonly privacy: PrivacyBudget | undefined;
  readonly objective: Objective;

  private constructor(
    private readonly task: TaskRecord,
    private readonly model: tfl.LayersModel,
    private versionNow: number,
    private readonly options: GlobalModelOptions,
  ) {
    this.lengths = weightLengths(model);
    this.privacy = PrivacyBudget.of(task.spec, this.lengths.reduce((a, b) => a + b, 0));
    this.strategy = createStrategy(task.spec, { budget: this.privacy });
    this.objective = objectiveOf(task.spec.data);
    this.clipsNow = this.lengths.map(() => Math.fround(INITIAL_SECURE_CLIP));
    this.weightsNow = readWeights(model);
  }

  /** The task's model at its last completed round (the seeded initial model before the first). */
  static async open(task: TaskRecord, options: GlobalModelOptions): Promise<GlobalModel> {
    const { checkpoints } = options;
    const global = new GlobalModel(task, await buildModel(task.spec.model, task.spec.data, task.spec.seed), task.completedRounds, options);
    // Round 0's checkpoint is written once: by the first start, not again by each restart or cluster process.
    if (task.completedRounds === 0 && !(await checkpoints.exists(task.id, 0))) {
      // An uploaded model brings its own initial weights; a built-in one starts from its seed.
      const initial = await checkpoints.loadInitialWeights(task.id, global.lengths);
      if (initial) {
        writeWeights(global.model, initial);
        global.weightsNow = readWeights(global.model);
      }
      await checkpoints.save(task.id, 0, global.model, global.serverState());
      return global;
    }
    writeWeights(global.model, await checkpoints.loadWeights(task.id, task.completedRounds, global.lengths));
    global.weightsNow = readWeights(global.model);
    const state = await checkpoints.loadServerState(task.id, task.completedRounds);
    if (state?.strategy === task.spec.strategy) global.strategy.restore(state.tensors);
    if (state?.clips.length === global.lengths.length) global.clipsNow = state.clips;
    return global;
  }

  /** The task has no more rounds to run: all done, or the next would exceed its privacy budget. */
  get finished(): boolean {
    return this.versionNow >= this.task.spec.rounds || this.budgetSpent;
  }

  /** A differentially private task whose next round would spend more than its target ε. */
  get budgetSpent(): boolean {
    return this.privacy !== undefined && !this.privacy.affords(this.versionNow + 1);
  }

  get version(): number {
    return this.versionNow;
  }

  get weights(): Weights {
    return this.weightsNow;
  }

  /** Secure rounds: each tensor's shared quantization range, adapted round by round. */
  get clips(): readonly number[] {
    return this.clipsNow;
  }

  private serverState(clips = this.clipsNow) {
    return { strategy: this.task.spec.strategy, tensors: this.strategy.state(), clips };
  }

  /** A fold for the next round's updates as they arrive, or undefined when the task's rule needs them all. */
  startFold(): UpdateFold | undefined {
    return this.strategy.fold(this.lengths, this.versionNow + 1);
  }

  private combine(input: Contribution['input'], round: number): Combined {
    if ('fold' in input) return input.fold.finish();
    if ('updates' in input) return this.strategy.combine(input.updates, round);
    if ('sum' in input) return { delta: input.sum.mean(), discarded: [] };
    return { delta: input.mean, discarded: [] };
  }

  /** Applies a round's contribution: the next version, evaluated, checkpointed and recorded. */
  async advance(c: Contribution): Promise<RoundRecord> {
    const { id } = this.task;
    const { store, checkpoints, events, log } = this.options;
    const round = this.versionNow + 1;
    const stepStarted = performance.now();
    const combined = this.combine(c.input, round);
    const next = await this.strategy.step(this.weightsNow, combined.delta, round);
    const report = this.strategy.report();
    const aggregationMs = c.aggregationMs + performance.now() - stepStarted;
    writeWeights(this.model, next);
    const clips = c.clips ?? this.clipsNow;
    const testSet = await this.options.testSet();
    const metrics = testSet ? finiteMetrics(this.objective.metrics(await evaluationSums(this.model, testSet, this.task.spec.data))) : {};
    const accuracy = metrics.accuracy ?? null;
    const loss = metrics.loss ?? null;
    // Checkpoint first, record second: a crash between the two only repeats the round.
    await checkpoints.save(id, round, this.model, this.serverState(clips), this.options.fence);
    const record: RoundRecord = {
      taskId: id,
      round,
      participants: c.participants,
      dropped: c.dropped,
      late: c.late,
      rejected: c.rejected,
      samples: c.samples,
      staleness: c.staleness,
      accuracy,
      loss,
      metrics,
      federated: c.federated ?? null,
      uploadBytes: c.uploadBytes,
      uploadBytesPerParam: c.uploadBytes / c.participants / countParameters(next),
      durationMs: Date.now() - c.startedAt,
      finishedAt: new Date().toISOString(),
      rule: `${report.combine} → ${report.optimizer}`,
      discarded: combined.discarded,
      epsilon: this.privacy ? this.privacy.epsilonAfter(round) : null,
      clipNorm: report.clipNorm ?? null,
    };
    await store.completeRound(record, c.participantsDetail, this.options.fence);
    this.weightsNow = next;
    this.clipsNow = clips;
    this.versionNow = round;
    log.info({ taskId: id, round, accuracy, loss, participants: record.participants, durationMs: record.durationMs }, 'round complete');
    events.roundComplete(record, { taskId: id, round, modelVersion: round, accuracy, loss, metrics, participants: record.participants }, { aggregationMs, deadlineMs: this.task.spec.roundDeadlineMs, participants: c.participantsDetail ?? [] });
    return record;
  }
}
