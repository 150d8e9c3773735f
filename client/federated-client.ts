import { EventEmitter } from 'eventemitter3';
import { cryptoReady, fingerprint, generateSigningKeyPair } from '../shared/crypto/sodium.ts';
import { TributaryError } from '../shared/errors.ts';
import type { Capabilities, JoinReply, ReadyRequest } from '../shared/protocol/events.ts';
import { evaluatesFederatedly, type TaskRecord } from '../shared/protocol/task.ts';
import { Connection } from './connection.ts';
import { enroll } from './enrollment.ts';
import { RoundRunner, type TrainingSetup } from './round-runner.ts';
import { Trainer } from './trainer.ts';
import { resolveData } from './data-input.ts';
import { holdOut } from '../shared/data/dataset.ts';
import type { ClientEvents, FederatedClientOptions } from './types.ts';

export type { ActivatedBackend, ClientEvents, Enrollment, FederatedClientOptions, SecurePhase } from './types.ts';
export type { DataInput, DataProvider, RawSample } from './data-input.ts';

/** The device's side of a task: backend, trainer and data, set up once whatever connection gets to it. */
interface Setup extends TrainingSetup {
  backend: string;
}

/**
 * A federated participant: joins a task, trains locally when selected, and uploads its
 * quantized update in acknowledged chunks. Runtime-neutral: the same class runs in
 * browsers and in Node; callers pick the TF.js backend and the data. It puts together the
 * connection (joins on every connection), enrollment, and the round runner.
 */
export class FederatedClient extends EventEmitter<ClientEvents> {
  private readonly connection: Connection;
  private rounds: RoundRunner | undefined;
  private setup: Promise<Setup> | undefined;
  private task: TaskRecord | undefined;
  private readonly seed: number;
  private paused = false;
  /** Rejects a `start()` still waiting to join: `stop()` came first. */
  private cancelStart: ((error: Error) => void) | undefined;
  /** What this device reports it can do; throughput follows its latest round. */
  private capabilities: Capabilities = { throughput: 0 };

  constructor(private readonly options: FederatedClientOptions) {
    super();
    this.seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
    const { server, taskId, kind = 'browser', shard, pinnedServerKey, resume } = options;
    this.connection = new Connection({ server, taskId, kind, shard, pinnedServerKey, resume }, {
      prepare: (joined) => this.prepare(joined),
      joined: (joined, readiness) => this.emit('joined', {
        clientId: joined.clientId,
        resumed: joined.resumed,
        shard: joined.shard,
        task: joined.task,
        samples: readiness.samples,
        backend: readiness.backend,
        serverKey: joined.serverKey,
        serverFingerprint: fingerprint(joined.serverKey),
      }),
      dropped: (reason) => {
        this.rounds?.connectionDropped();
        this.emit('disconnected', { reason });
      },
      deferred: (error, retryInMs) => this.emit('join-deferred', { code: error.code, message: error.message, retryInMs }),
      failed: (error) => {
        this.fail(error); // first: a start() still waiting fails with this error, not with the stop's
        // A server showing another key is never talked to again.
        if (error instanceof TributaryError && error.code === 'SERVER_KEY_MISMATCH') this.stop();
      },
      events: {
        'round:start': (start) => this.rounds?.started(start),
        'round:end': (end) => this.emit('model-updated', { version: end.modelVersion, accuracy: end.accuracy, loss: end.loss, metrics: end.metrics }),
        'task:status': ({ status }) => {
          if (status === 'completed' || status === 'stopped') this.emit('finished', { status });
        },
      },
    });
  }

  get clientTask(): TaskRecord | undefined {
    return this.task;
  }

  /**
   * Enrolls if asked, connects, joins the task, sets up backend and data and reports ready.
   * Reconnects and joins again by itself after a drop, whenever it comes.
   */
  async start(): Promise<void> {
    await cryptoReady();
    const identity = this.options.identity ?? generateSigningKeyPair();
    if (this.options.enrollment) await enroll(this.options.server, this.options.taskId, identity.publicKey, this.options.enrollment);
    this.rounds = new RoundRunner({
      connection: this.connection,
      identity,
      seed: this.seed,
      setup: () => this.setup ?? Promise.reject(new TributaryError('NOT_JOINED', 'a round config reached a client not set up')),
      events: this,
      measured: (throughput) => (this.capabilities = { ...this.capabilities, throughput }),
      uploaded: () => void this.reportReadiness().catch(() => undefined),
      fail: (error) => this.fail(error),
      transformUpdate: this.options.transformUpdate,
    });
    const joined = new Promise<void>((resolve, reject) => {
      const onJoined = () => {
        this.off('error', onError);
        resolve();
      };
      const onError = (error: Error) => {
        this.off('joined', onJoined);
        reject(error);
      };
      this.once('joined', onJoined);
      this.once('error', onError);
      this.cancelStart = onError;
    });
    this.connection.open(identity);
    try {
      await joined;
    } finally {
      this.cancelStart = undefined;
    }
  }

  /** Fault injection: drops the connection as a network failure would; the client reconnects by itself. */
  simulateNetworkDrop(): void {
    this.connection.simulateDrop();
  }

  /** Stays joined but asks not to be selected, and gives up the round in progress. */
  async pause(): Promise<void> {
    this.paused = true;
    this.rounds?.abandon('paused');
    await this.reportReadiness();
  }

  /** Available for rounds again. */
  async resume(): Promise<void> {
    this.paused = false;
    await this.reportReadiness();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** What takes this client's session back after a reload or restart (pass it as `resume`). */
  get resumeCredentials(): { clientId: string; token: Uint8Array } | undefined {
    return this.connection.resumeCredentials;
  }

  stop(): void {
    this.cancelStart?.(new TributaryError('NOT_JOINED', 'the client stopped before it joined'));
    this.rounds?.abandon('the client stopped');
    this.connection.close();
    // A set-up still under way is disposed of once it is done.
    const setup = this.setup;
    this.setup = undefined;
    void setup?.then(({ trainer }) => trainer.dispose(), () => undefined);
  }

  /** Each join, once its connection has joined: set up (the first time) and say what to report. */
  private async prepare(joined: JoinReply): Promise<ReadyRequest> {
    // A new session (the server restarted, or kept us away too long): the round in progress is lost with the old one.
    if (!joined.resumed) this.rounds?.abandon('the server no longer holds this client\'s session');
    this.task ??= joined.task;
    this.setup ??= this.setUp(joined.task, joined.shard);
    return this.readiness(await this.setup);
  }

  private async setUp(task: TaskRecord, shard: number | null): Promise<Setup> {
    const activated = await this.options.activateBackend(task);
    if (typeof activated !== 'string') {
      const { throughput = 0, adapter, memoryMb } = activated;
      this.capabilities = { throughput, ...(adapter ? { adapter } : {}), ...(memoryMb ? { memoryMb } : {}) };
    }
    const trainer = await Trainer.create(task.spec, task.spec.seed, this.options.throttle);
    try {
      const all = await resolveData(this.options.data, { task, shard });
      // The held-out part is never trained on: federated evaluation scores global models on it.
      const { train, test } = holdOut(all, evaluatesFederatedly(task.spec) ? task.spec.evaluation.holdout : 0, this.seed);
      return { backend: typeof activated === 'string' ? activated : activated.name, trainer, data: train, heldOut: test };
    } catch (error) {
      trainer.dispose();
      throw error;
    }
  }

  private async readiness({ data, backend }: Setup): Promise<ReadyRequest> {
    const battery = await this.options.battery?.().catch(() => undefined);
    return {
      taskId: this.options.taskId,
      samples: data.n,
      backend,
      cachedVersion: this.rounds?.cachedVersion ?? -1,
      paused: this.paused,
      capabilities: { ...this.capabilities, ...(battery ? { battery } : {}) },
    };
  }

  /** Before set-up there is nothing to report: the join reports readiness once it has it. */
  private async reportReadiness(): Promise<void> {
    const setup = await this.setup?.catch(() => undefined);
    if (setup) await this.connection.report(() => this.readiness(setup));
  }

  private fail(error: unknown): void {
    this.emit('error', error instanceof Error ? error : new Error(String(error)));
  }
}
