import { TributaryError } from '../../shared/errors.ts';
import type { ChunkAck, ChunkMeta } from '../../shared/protocol/events.ts';
import { populationOf, type TaskRecord } from '../../shared/protocol/task.ts';
import { runMaskedRound } from '../secagg/masked-round.ts';
import type { SecureRound } from '../secagg/secure-round.ts';
import { acceptUploadChunk, collectUploads, sendRoundStarts } from './dispatch.ts';
import { planEvaluation } from './federated-evaluation.ts';
import type { Contribution, GlobalModel } from './global-model.ts';
import { accountParticipants } from './participants.ts';
import { runPlainRound } from './plain-round.ts';
import type { RoundCollection } from './round-collection.ts';
import type { RoundRun } from './round-run.ts';
import type { CoordinatorOptions, TaskRunner } from './runner.ts';
import type { RoundPlan } from './scheduler.ts';
import { Waker } from './waker.ts';

/** Pause after an aborted round before selecting again. */
const ABORTED_ROUND_PAUSE_MS = 2_000;
/** Once a federation has run a round, a shrunk one (devices gone) carries on after this wait. */
const SHRUNK_FEDERATION_GRACE_MS = 5_000;

/**
 * The round loop of a sync task: select, run the round (plain-round.ts, or
 * secagg/masked-round.ts for secure tasks), and let the global model advance. It routes
 * what the gateway hands it (chunks, departures, secure-phase messages) to the round in
 * progress.
 */
export class SyncRunner implements TaskRunner {
  private stopped = false;
  /** The round collecting updates, or the last one to (closed). */
  private collection: RoundCollection<unknown> | undefined;
  private secure: SecureRound | undefined;
  private readonly waker = new Waker();
  private finishedRun: Promise<'completed' | 'stopped'> | undefined;
  private roundsTried = 0;

  constructor(
    private readonly task: TaskRecord,
    private readonly global: GlobalModel,
    private readonly options: CoordinatorOptions,
  ) {}

  run(): Promise<'completed' | 'stopped'> {
    this.finishedRun ??= this.loop();
    return this.finishedRun;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.collection?.abort();
    this.secure?.abort(new TributaryError('TASK_NOT_RUNNING', 'the task was stopped'));
    this.waker.wake();
    await this.finishedRun;
  }

  clientsChanged(): void {
    this.waker.wake();
  }

  acceptChunk(clientId: string, meta: ChunkMeta, data: Uint8Array): ChunkAck {
    return acceptUploadChunk(this.collection, this.options, this.task, clientId, meta, data);
  }

  secureRound(round: number): SecureRound {
    if (!this.secure || this.global.version + 1 !== round) throw new TributaryError('ROUND_NOT_ACTIVE', `no secure round ${round} is running`);
    return this.secure;
  }

  /**
   * A plain round keeps an away client's place (its upload resumes where it stopped); a
   * secure round cannot, since the phases' deferred answers went to the dead connection,
   * so SecAgg's drop-out handling takes over.
   */
  clientAway(clientId: string): void {
    if (this.secure) {
      this.secure.drop(clientId);
      this.collection?.drop(clientId); // its masked upload cannot resume either
    }
    this.waker.wake();
  }

  clientLeft(clientId: string): void {
    this.collection?.drop(clientId);
    this.secure?.drop(clientId);
    this.waker.wake();
  }

  private async loop(): Promise<'completed' | 'stopped'> {
    const { spec, id } = this.task;
    const { log } = this.options;
    const { global } = this;
    while (!global.finished && !this.stopped) {
      const round = global.version + 1;
      const plan = await this.selectParticipants(round);
      if (this.stopped) break;
      this.roundsTried++;
      let contribution: Contribution | null = null;
      try {
        const run = this.roundRun(plan);
        contribution = spec.secure ? await runMaskedRound(run) : await runPlainRound(run);
      } catch (error) {
        if (!(error instanceof TributaryError)) throw error;
        if (!this.stopped) {
          log.warn({ taskId: id, round, code: error.code, reason: error.message }, 'round aborted; model unchanged');
          this.options.events.roundAborted({ taskId: id, round, error: error.toBody() });
          await new Promise((resolve) => setTimeout(resolve, ABORTED_ROUND_PAUSE_MS)); // let departures register before retrying
        }
      }
      for (const p of plan.participants) p.settleRound(round);
      if (this.stopped) break;
      if (contribution) await global.advance(contribution);
    }
    if (global.budgetSpent) this.options.log.info({ taskId: this.task.id, round: global.version }, 'privacy budget spent: the task stops before exceeding it');
    return global.finished ? 'completed' : 'stopped';
  }

  /** What the round in progress may use of this runner: sending configs, collecting, the secure protocol's routing. */
  private roundRun(plan: RoundPlan): RoundRun {
    const { task, global, options } = this;
    const startedAt = Date.now();
    const evaluation = planEvaluation(task.spec, plan.round, plan.participants.map((p) => p.id));
    return {
      task,
      global,
      plan,
      startedAt,
      evaluation,
      options,
      announce: (base) => {
        void sendRoundStarts(plan.participants, base, global, options.signingKey, plan.budgets, evaluation?.evaluators);
        options.events.roundStarted({ taskId: task.id, round: base.round, participants: plan.participants.map((p) => p.id), deadline: base.deadline });
      },
      collect: async (request) => {
        const collection = collectUploads({ ...request, taskId: task.id, round: plan.round, maxChunkBytes: options.chunkBytes });
        // Kept after it closes: it refuses new chunks, and acknowledges again a final chunk whose ack was lost.
        this.collection = collection as RoundCollection<unknown>;
        return collection.done;
      },
      runProtocol: (protocol) => {
        this.secure = protocol;
      },
      account: (collected) => accountParticipants(plan, task.spec, collected, { startedAt, now: Date.now() }, options.scheduler),
    };
  }

  /** Fewest ready clients a round may start with. */
  private minimumParticipants(): number {
    const { spec } = this.task;
    return spec.secure ? Math.max(spec.minUpdates, 3, spec.threshold) : spec.minUpdates;
  }

  /**
   * Waits until enough clients are ready (all of clientsPerRound; or the minimum, after
   * a round deadline's wait for the first round and a short grace once the federation has
   * run, so devices that vanished do not stall it), then lets the scheduler draw the
   * participants and size their work.
   */
  private async selectParticipants(round: number): Promise<RoundPlan> {
    const { spec } = this.task;
    const { scheduler } = this.options;
    const waitingSince = Date.now();
    const grace = this.roundsTried > 0 ? SHRUNK_FEDERATION_GRACE_MS : spec.roundDeadlineMs;
    const choosing = scheduler.choose(this.task);
    try {
      for (;;) {
        if (this.stopped) return { round, participants: [], enough: 0, budgets: new Map(), targetMs: 0 };
        const ready = scheduler.eligible(this.task);
        const waited = Date.now() - waitingSince;
        // A private task samples from its whole population, so it waits for all of it.
        const wanted = spec.privacy.mode === 'off' ? spec.clientsPerRound : Math.max(spec.clientsPerRound, populationOf(spec));
        if (ready.length >= wanted || (waited > grace && ready.length >= this.minimumParticipants())) {
          const plan = scheduler.plan(this.task, round, ready);
          // A Poisson sample can come out too small: draw again (the size says nothing of anyone's data).
          if (plan.participants.length >= this.minimumParticipants()) return plan;
          await this.waker.sleep(100);
          continue;
        }
        await this.waker.sleep(1_000);
      }
    } finally {
      choosing.done();
    }
  }
}
