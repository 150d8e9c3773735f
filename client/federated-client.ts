import { EventEmitter } from 'eventemitter3';
import { io, type Socket } from 'socket.io-client';
import { subtractWeights, type Weights } from '../shared/ml/aggregate.ts';
import type { LabelledSet } from '../shared/data/dataset.ts';
import { TributaryError } from '../shared/errors.ts';
import { decodeWeights } from '../shared/codec/model-wire.ts';
import type {
  Ack,
  Capabilities,
  ChunkAck,
  ChunkMeta,
  ClientKind,
  ClientToServerEvents,
  JoinReply,
  Reply,
  RoundEnd,
  RoundStart,
  ServerToClientEvents,
} from '../shared/protocol/events.ts';
import { joinProofMessage } from '../shared/protocol/events.ts';
import { createRng, deriveSeed, type Rng } from '../shared/random.ts';
import type { TaskRecord } from '../shared/protocol/task.ts';
import { encodeUpdate } from '../shared/codec/update-codec.ts';
import { cryptoReady, equalBytes, fingerprint, generateSigningKeyPair, seal, sign, toBase64, type KeyPair } from '../shared/crypto/sodium.ts';
import { expandSeed } from '../shared/secagg/mask-stream.ts';
import { encodeRing } from '../shared/secagg/ring.ts';
import { verifyRoundStart } from '../shared/protocol/round-signature.ts';
import { SecAggClient } from '../shared/secagg/client.ts';
import { roundContext, unpackAdvertised, unpackConfirmations, type SecureRoundConfig } from '../shared/secagg/protocol.ts';
import { encodeSecureInput } from '../shared/codec/secure-codec.ts';
import { Trainer, type TrainResult } from './trainer.ts';

/** Where a client's training data comes from, once it knows its task (and demo shard). */
export type DataProvider = (context: { task: TaskRecord; shard: number | null }) => Promise<LabelledSet>;

export interface FederatedClientOptions {
  /** Server URL, e.g. `http://127.0.0.1:8080`. */
  server: string;
  taskId: number;
  data: DataProvider;
  kind?: ClientKind;
  /**
   * Activates the TF.js backend for the task's model (before any model is built) and
   * returns its name, or its name with what it measured (throughput, GPU adapter).
   */
  activateBackend: (task: TaskRecord) => Promise<string | ActivatedBackend>;
  /** Reads the device's battery, where it can (browsers): reported so a scheduler can spare it. */
  battery?: () => Promise<{ level: number; charging: boolean } | undefined>;
  /** A session to take back, e.g. kept across a page reload (see `resumeCredentials`). */
  resume?: { clientId: string; token: Uint8Array };
  /** Ask for a specific demo data shard. */
  shard?: number;
  /** Seeds the stochastic rounding of this client's updates. */
  seed?: number;
  /** Train at this fraction of full speed (0 < throttle ≤ 1), idling between steps: spares a battery. */
  throttle?: number;
  /**
   * How this device's identity gets enrolled in the task before it joins: with a token an
   * operator minted, or by the task's open enrollment. Omit it once the identity is enrolled.
   */
  enrollment?: { token: string } | 'open';
  /**
   * The server's Ed25519 key as pinned at an earlier first contact. A server showing
   * another key is refused (SERVER_KEY_MISMATCH); without one, the first key seen is pinned.
   */
  pinnedServerKey?: Uint8Array;
  /**
   * The client's long-term Ed25519 identity; it signs the client's keys in secure rounds.
   * Persist it (the Node edge client keeps it in a file); without one a fresh key is made per client.
   */
  identity?: KeyPair;
}

export interface ActivatedBackend {
  name: string;
  /** Training samples per second on the task's model, measured here. */
  throughput?: number;
  adapter?: string;
  /** The device's memory, MiB. */
  memoryMb?: number;
}

/** Where a secure round has got to on this client; a crash-test can act on each. */
export type SecurePhase = 'advertised' | 'shared' | 'uploaded' | 'revealed';

export interface ClientEvents {
  joined: (info: {
    clientId: string;
    /** True after a reconnect that kept the session (and the round in progress). */
    resumed: boolean;
    shard: number | null;
    task: TaskRecord;
    samples: number;
    backend: string;
    serverKey: Uint8Array;
    serverFingerprint: string;
  }) => void;
  'round-start': (info: { round: number; modelVersion: number; deadline: number; downloadedWeights: boolean }) => void;
  /** The connection dropped; the client reconnects by itself (with backoff) and resumes. */
  disconnected: (info: { reason: string }) => void;
  /** A round attempt given up: superseded by a newer config, or lost with the connection. */
  'round-abandoned': (info: { round: number; reason: string }) => void;
  progress: (info: { round: number; fraction: number; loss: number }) => void;
  uploaded: (info: { round: number; bytes: number; chunks: number; train: Omit<TrainResult, 'weights'> }) => void;
  'secure-phase': (info: { round: number; phase: SecurePhase }) => void;
  'model-updated': (info: { version: number; accuracy: number; loss: number }) => void;
  finished: (info: { status: 'completed' | 'stopped' }) => void;
  error: (error: Error) => void;
}

type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

function bytes(value: Uint8Array | ArrayBuffer | null | undefined): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TributaryError('BAD_REQUEST', 'expected binary data from the server');
}

/** Deferred acks of secure phases may arrive this long after the round's upload deadline. */
const SECURE_ACK_SLACK_MS = 120_000;
/** A request unanswered this long is sent again (after a re-join if the connection dropped). */
const REQUEST_TIMEOUT_MS = 30_000;
/** Round configs already handled, remembered by aggregator key so a re-sent config is not trained twice. */
const REMEMBERED_ATTEMPTS = 8;

/** A promise with its resolver: the client's "joined on the current connection" state. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Rejects with the signal's reason as soon as it is aborted. */
function unlessAborted<T>(signal: AbortSignal, work: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

type SecureEvent = Extract<keyof ClientToServerEvents, `secagg:${string}`>;
type AckValue<E extends keyof ClientToServerEvents> = Parameters<ClientToServerEvents[E]>[1] extends Ack<infer T> ? T : never;

function unwrap<T>(reply: Reply<T>): T {
  if (reply.ok) return reply.value;
  throw TributaryError.fromBody(reply.error);
}

/**
 * A federated participant: joins a task, trains locally when selected, and uploads its
 * quantized update in acknowledged chunks. Runtime-neutral: the same class runs in
 * browsers and in Node; callers pick the TF.js backend and the data.
 */
export class FederatedClient extends EventEmitter<ClientEvents> {
  private socket: ClientSocket | undefined;
  private trainer: Trainer | undefined;
  private data: LabelledSet | undefined;
  private task: TaskRecord | undefined;
  private lengths: number[] = [];
  private global: { version: number; weights: Weights } | undefined;
  /** Error-feedback residual: what quantization left out, added to the next update. */
  private residual: Weights | undefined;
  private readonly seed: number;
  private readonly rng: Rng;
  private busy: Promise<void> = Promise.resolve();
  private backend = '';
  private serverKey: Uint8Array | undefined;
  private identity: KeyPair | undefined;
  private clientId = '';
  /** What lets this client take its session back after a reconnect. */
  private resumeWith: { clientId: string; token: Uint8Array } | undefined;
  /** Open while joined on the current connection; replaced at every disconnect. */
  private joinedGate = gate();
  /** The round attempt being worked on, and the attempts seen lately. */
  private current: { round: number; secure: boolean; abort: AbortController } | undefined;
  private readonly seenAttempts: Uint8Array[] = [];
  private paused = false;
  /** What this device reports it can do; throughput follows its latest round. */
  private capabilities: Capabilities = { throughput: 0 };

  constructor(private readonly options: FederatedClientOptions) {
    super();
    this.seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
    this.serverKey = options.pinnedServerKey;
    this.identity = options.identity;
    this.resumeWith = options.resume;
    this.rng = createRng(deriveSeed(this.seed, 'rounding'));
  }

  get clientTask(): TaskRecord | undefined {
    return this.task;
  }

  /** Connects, joins the task, loads the data and reports ready. Reconnects by itself after a drop. */
  async start(): Promise<void> {
    await cryptoReady();
    this.identity ??= generateSigningKeyPair();
    if (this.options.enrollment) await this.enroll(this.options.enrollment);
    const socket: ClientSocket = io(this.options.server, { transports: ['websocket'], reconnection: true });
    this.socket = socket;
    socket.on('round:start', (start) => this.roundStarted(start));
    socket.on('round:end', (end) => this.roundEnded(end));
    socket.on('task:status', ({ status }) => {
      if (status === 'completed' || status === 'stopped') this.emit('finished', { status });
    });
    socket.on('server:error', (error) => this.fail(TributaryError.fromBody(error)));
    socket.on('connect', () => {
      // First connect and every reconnect: (re)join, taking the session back if the server still holds it.
      this.join().catch((error: unknown) => this.fail(error));
    });
    socket.on('disconnect', (reason) => {
      this.joinedGate = gate();
      // A secure round cannot continue on a new connection: the server counts this client as dropped.
      if (this.current?.secure) this.abandon('the connection dropped during a secure round');
      if (reason !== 'io client disconnect') this.emit('disconnected', { reason });
    });
    await new Promise<void>((resolve, reject) => {
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
    });
  }

  /** Fault injection: drops the connection as a network failure would; the client reconnects by itself. */
  simulateNetworkDrop(): void {
    this.socket?.io.engine?.close();
  }

  /** Stays joined but asks not to be selected, and gives up the round in progress. */
  async pause(): Promise<void> {
    this.paused = true;
    this.abandon('paused');
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
    return this.resumeWith;
  }

  private async readiness() {
    const battery = await this.options.battery?.().catch(() => undefined);
    return {
      taskId: this.options.taskId,
      samples: this.data!.n,
      backend: this.backend,
      cachedVersion: this.global?.version ?? -1,
      paused: this.paused,
      capabilities: { ...this.capabilities, ...(battery ? { battery } : {}) },
    };
  }

  private async reportReadiness(): Promise<void> {
    if (!this.socket?.connected || !this.data) return; // the next (re)join reports it
    unwrap(await this.socket.emitWithAck('client:ready', await this.readiness()));
  }

  stop(): void {
    this.abandon('the client stopped');
    this.socket?.disconnect();
    this.trainer?.dispose();
    this.trainer = undefined;
  }

  /** Binds this device's identity key to the task (REST), with a token or by open enrollment. */
  private async enroll(how: { token: string } | 'open'): Promise<void> {
    const identityKey = toBase64(this.identity!.publicKey);
    const [path, body] = how === 'open' ? [`/api/tasks/${this.options.taskId}/enroll`, { identityKey }] : ['/api/enroll', { token: how.token, identityKey }];
    const response = await fetch(new URL(path, this.options.server), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const reply = (await response.json()) as { taskId?: number; code?: string; message?: string };
    if (!response.ok) throw TributaryError.fromBody({ code: reply.code, message: reply.message ?? `enrollment failed (HTTP ${response.status})` });
    if (reply.taskId !== this.options.taskId) throw new TributaryError('ENROLLMENT_TOKEN_INVALID', `the token is for task ${reply.taskId}, not ${this.options.taskId}`);
  }

  private async join(): Promise<void> {
    const socket = this.socket!;
    const { taskId, shard } = this.options;
    const kind = this.options.kind ?? 'browser';
    // Prove the enrolled identity: sign the one-time nonce this connection was given.
    const { nonce } = unwrap(await socket.emitWithAck('auth:challenge', {}));
    const proof = sign(joinProofMessage(bytes(nonce), taskId, kind), this.identity!.secretKey);
    const joined: JoinReply = unwrap(
      await socket.emitWithAck('task:join', {
        taskId,
        kind,
        proof,
        identityKey: this.identity!.publicKey,
        ...(shard === undefined ? {} : { shard }),
        ...(this.resumeWith ? { resume: this.resumeWith } : {}),
      }),
    );
    const serverKey = bytes(joined.serverKey);
    if (this.serverKey && !equalBytes(this.serverKey, serverKey)) {
      this.stop();
      throw new TributaryError('SERVER_KEY_MISMATCH', `pinned ${fingerprint(this.serverKey)}, got ${fingerprint(serverKey)}`);
    }
    this.serverKey = serverKey;
    // A new session (the server restarted, or kept us away too long): the round in progress is lost with the old one.
    if (!joined.resumed) this.abandon('the server no longer holds this client\'s session');
    this.clientId = joined.clientId;
    this.resumeWith = { clientId: joined.clientId, token: bytes(joined.resumeToken) };
    if (!this.task) {
      this.task = joined.task;
      const activated = await this.options.activateBackend(joined.task);
      this.backend = typeof activated === 'string' ? activated : activated.name;
      if (typeof activated !== 'string') {
        const { throughput = 0, adapter, memoryMb } = activated;
        this.capabilities = { throughput, ...(adapter ? { adapter } : {}), ...(memoryMb ? { memoryMb } : {}) };
      }
      this.trainer = new Trainer(joined.task.spec.model, joined.task.spec.seed, this.options.throttle);
      this.lengths = this.trainer.weightLengths;
      this.data = await this.options.data({ task: joined.task, shard: joined.shard });
    }
    unwrap(
      await socket.emitWithAck('client:ready', await this.readiness()),
    );
    this.joinedGate.open();
    this.emit('joined', {
      clientId: joined.clientId,
      resumed: joined.resumed,
      shard: joined.shard,
      task: joined.task,
      samples: this.data!.n,
      backend: this.backend,
      serverKey,
      serverFingerprint: fingerprint(serverKey),
    });
  }

  /**
   * A round config arrived. Rounds run one at a time; a newer config supersedes the attempt
   * in progress (the server moved on, or restarted the round), and a config re-sent after a
   * reconnect for an attempt already under way is ignored.
   */
  private roundStarted(received: RoundStart): void {
    const key = bytes(received.aggregatorKey);
    if (this.seenAttempts.some((seen) => equalBytes(seen, key))) return;
    this.seenAttempts.push(key);
    if (this.seenAttempts.length > REMEMBERED_ATTEMPTS) this.seenAttempts.shift();
    this.abandon(`round ${received.round} started`);
    const attempt = { round: received.round, secure: received.secure !== null, abort: new AbortController() };
    this.current = attempt;
    this.busy = this.busy
      .then(() => this.runRound(received, attempt.abort.signal))
      .catch((error: unknown) => {
        // A round that fails reports an error and the client stays in the task.
        if (!attempt.abort.signal.aborted) this.fail(error);
      })
      .finally(() => {
        if (this.current === attempt) this.current = undefined;
      });
  }

  /** Gives up the round attempt in progress, if any. */
  private abandon(reason: string): void {
    const attempt = this.current;
    if (!attempt || attempt.abort.signal.aborted) return;
    attempt.abort.abort(new TributaryError('ROUND_NOT_ACTIVE', reason));
    this.emit('round-abandoned', { round: attempt.round, reason });
  }

  private async runRound(received: RoundStart, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    // Browsers receive binary as ArrayBuffer, Node as Buffer: one shape before verifying.
    const start: RoundStart = {
      ...received,
      weights: received.weights && bytes(received.weights),
      aggregatorKey: bytes(received.aggregatorKey),
      secure: received.secure && {
        ...received.secure,
        graphSeed: bytes(received.secure.graphSeed),
        identityKeys: bytes(received.secure.identityKeys),
      },
      signature: bytes(received.signature),
    };
    verifyRoundStart(start, this.serverKey!);
    if (start.weights) {
      this.global = { version: start.modelVersion, weights: decodeWeights(start.weights, this.lengths) };
    }
    const global = this.global;
    if (!global || global.version !== start.modelVersion) {
      throw new TributaryError('MODEL_MALFORMED', `no weights for model version ${start.modelVersion}`);
    }
    this.emit('round-start', {
      round: start.round,
      modelVersion: start.modelVersion,
      deadline: start.deadline,
      downloadedWeights: start.weights !== null,
    });
    this.residual ??= this.lengths.map((n) => new Float32Array(n));
    if (start.secure) {
      await this.runSecureRound(start, start.secure, global.weights, signal);
      return;
    }
    const { delta, train } = await this.train(start, global.weights, signal);
    // Sealed to this round's aggregator key: relays and proxies see ciphertext only.
    const payload = seal(
      encodeUpdate(delta, { bits: start.bits, clipSigma: start.clipSigma, rng: this.rng, residual: this.residual }),
      start.aggregatorKey,
    );
    const chunks = await this.upload(start, payload, train.samples, signal);
    this.emit('uploaded', { round: start.round, bytes: payload.byteLength, chunks, train });
    void this.reportReadiness().catch(() => undefined); // the latest measured speed
  }

  private async train(start: RoundStart, global: Weights, signal: AbortSignal): Promise<{ delta: Weights; train: Omit<TrainResult, 'weights'> }> {
    const shuffleSeed = deriveSeed(this.seed, 'shuffle', start.round);
    const result = await this.trainer!.train(global, this.data!, start.hyper, shuffleSeed, (fraction, loss) => {
      this.emit('progress', { round: start.round, fraction, loss });
    }, signal, start.budget ?? undefined);
    const { weights, ...train } = result;
    if (train.durationMs > 0) this.capabilities = { ...this.capabilities, throughput: train.processed / (train.durationMs / 1000) };
    return { delta: subtractWeights(weights, global), train };
  }

  /**
   * SecAgg+ from the client's side: keys and shares first (quick, while everyone is
   * online), then training, then the masked input and the unmasking phases. Each request's
   * ack arrives when the server closes that phase.
   */
  private async runSecureRound(start: RoundStart, secure: SecureRoundConfig, global: Weights, signal: AbortSignal): Promise<void> {
    const ref = { taskId: start.taskId, round: start.round };
    const index = secure.participants.findIndex((p) => p.clientId === this.clientId);
    if (index < 0) throw new TributaryError('NOT_A_PARTICIPANT', `round ${start.round} config does not list this client`);
    const protocol = new SecAggClient(secure, roundContext(start.taskId, start.round, start.aggregatorKey), index, this.identity!);
    const timeout = start.deadline - Date.now() + SECURE_ACK_SLACK_MS;
    const phase = (name: SecurePhase) => this.emit('secure-phase', { round: start.round, phase: name });

    const { index: _index, ...keys } = protocol.advertise();
    const request = <E extends SecureEvent>(event: E, body: Parameters<ClientToServerEvents[E]>[0]) =>
      unlessAborted(signal, this.phaseRequest(event, timeout, body));
    const { advertised } = await request('secagg:advertise', { ...ref, ...keys });
    phase('advertised');
    const boxes = await protocol.share(unpackAdvertised(bytes(advertised)));
    const relayed = await request('secagg:share', { ...ref, boxes });
    protocol.receive({ sharers: relayed.sharers, boxes: bytes(relayed.boxes) });
    phase('shared');

    const { delta, train } = await this.train(start, global, signal);
    const me = secure.participants[index]!;
    const meanSamples = secure.participants.reduce((a, p) => a + p.samples, 0) / secure.participants.length;
    const levels = encodeSecureInput(delta, {
      bits: start.bits as Exclude<RoundStart['bits'], 32>,
      clips: secure.clips,
      scale: me.samples / meanSamples,
      residual: this.residual!,
      rng: this.rng,
    });
    const payload = seal(encodeRing(protocol.mask(levels, expandSeed), secure.ringBits), start.aggregatorKey);
    const chunks = await this.upload(start, payload, me.samples, signal);
    this.emit('uploaded', { round: start.round, bytes: payload.byteLength, chunks, train });
    phase('uploaded');

    const { survivors } = await request('secagg:survivors', ref);
    const signature = protocol.confirm(survivors);
    const { confirmations } = await request('secagg:confirm', { ...ref, signature });
    const shares = protocol.reveal(unpackConfirmations(bytes(confirmations)));
    await request('secagg:reveal', { ...ref, shares });
    phase('revealed');
  }

  /** A secure-phase request; the server acks when it closes the phase, so the wait is long. */
  private async phaseRequest<E extends SecureEvent>(event: E, timeoutMs: number, request: Parameters<ClientToServerEvents[E]>[0]): Promise<AckValue<E>> {
    // socket.io's timeout() typing loses the event map; the request type is checked by this signature.
    const timed = this.socket!.timeout(timeoutMs) as unknown as { emitWithAck(event: E, request: unknown): Promise<unknown> };
    const reply = await timed.emitWithAck(event, request);
    return unwrap(reply as Reply<AckValue<E>>);
  }

  /**
   * Sends the payload in acknowledged chunks. The server's ack names the next chunk it
   * needs, so after a lost ack or a reconnect the upload goes on from there, never from 0.
   */
  private async upload(start: RoundStart, payload: Uint8Array, samples: number, signal: AbortSignal): Promise<number> {
    const count = Math.max(1, Math.ceil(payload.byteLength / start.chunkBytes));
    for (let index = 0; index < count; ) {
      signal.throwIfAborted();
      const data = payload.subarray(index * start.chunkBytes, (index + 1) * start.chunkBytes);
      const meta = { taskId: start.taskId, round: start.round, index, count, totalBytes: payload.byteLength, samples };
      const ack = await unlessAborted(signal, this.request('update:chunk', meta, data));
      index = ack.next;
    }
    return count;
  }

  /**
   * A request that survives connection trouble: sent only while joined (volatile, so
   * nothing is queued for a connection that has not re-joined yet), and sent again when
   * its answer does not come. Coded errors from the server are final.
   */
  private async request(event: 'update:chunk', meta: ChunkMeta, data: Uint8Array): Promise<ChunkAck> {
    for (;;) {
      await this.joinedGate.promise;
      // socket.io's volatile/timeout typing loses the event map; the arguments are checked by this signature.
      const sender = this.socket!.volatile.timeout(REQUEST_TIMEOUT_MS) as unknown as {
        emitWithAck(event: string, ...args: unknown[]): Promise<Reply<ChunkAck>>;
      };
      let reply: Reply<ChunkAck>;
      try {
        reply = await sender.emitWithAck(event, meta, data);
      } catch {
        continue; // no answer in time: dropped with the connection, or the connection stalled
      }
      return unwrap(reply);
    }
  }

  private roundEnded(end: RoundEnd): void {
    this.emit('model-updated', { version: end.modelVersion, accuracy: end.accuracy, loss: end.loss });
  }

  private fail(error: unknown): void {
    this.emit('error', error instanceof Error ? error : new Error(String(error)));
  }
}
