import { EventEmitter } from 'eventemitter3';
import { io, type Socket } from 'socket.io-client';
import { subtractWeights, type Weights } from '../shared/aggregate.ts';
import type { LabelledSet } from '../shared/dataset.ts';
import { TributaryError } from '../shared/errors.ts';
import { decodeWeights } from '../shared/model-wire.ts';
import type {
  Ack,
  ClientKind,
  ClientToServerEvents,
  JoinReply,
  Reply,
  RoundEnd,
  RoundStart,
  ServerToClientEvents,
} from '../shared/protocol.ts';
import { createRng, deriveSeed, type Rng } from '../shared/random.ts';
import type { TaskRecord } from '../shared/task.ts';
import { encodeUpdate } from '../shared/update-codec.ts';
import { cryptoReady, equalBytes, fingerprint, generateSigningKeyPair, seal, type KeyPair } from '../shared/crypto.ts';
import { expandSeed } from '../shared/mask-stream.ts';
import { encodeRing } from '../shared/ring.ts';
import { verifyRoundStart } from '../shared/round-signature.ts';
import { SecAggClient } from '../shared/secagg-client.ts';
import { roundContext, unpackAdvertised, unpackConfirmations, type SecureRoundConfig } from '../shared/secagg-protocol.ts';
import { encodeSecureInput } from '../shared/secure-codec.ts';
import { Trainer, type TrainResult } from './trainer.ts';

/** Where a client's training data comes from, once it knows its task (and demo shard). */
export type DataProvider = (context: { task: TaskRecord; shard: number | null }) => Promise<LabelledSet>;

export interface FederatedClientOptions {
  /** Server URL, e.g. `http://127.0.0.1:8080`. */
  server: string;
  taskId: number;
  data: DataProvider;
  kind?: ClientKind;
  /** Activates the TF.js backend for the task's model and returns its name (before any model is built). */
  activateBackend: (task: TaskRecord) => Promise<string>;
  /** Ask for a specific demo data shard. */
  shard?: number;
  /** Seeds the stochastic rounding of this client's updates. */
  seed?: number;
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

/** Where a secure round has got to on this client; a crash-test can act on each. */
export type SecurePhase = 'advertised' | 'shared' | 'uploaded' | 'revealed';

export interface ClientEvents {
  joined: (info: {
    clientId: string;
    shard: number | null;
    task: TaskRecord;
    samples: number;
    backend: string;
    serverKey: Uint8Array;
    serverFingerprint: string;
  }) => void;
  'round-start': (info: { round: number; modelVersion: number; deadline: number; downloadedWeights: boolean }) => void;
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

  constructor(private readonly options: FederatedClientOptions) {
    super();
    this.seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
    this.serverKey = options.pinnedServerKey;
    this.identity = options.identity;
    this.rng = createRng(deriveSeed(this.seed, 'rounding'));
  }

  get clientTask(): TaskRecord | undefined {
    return this.task;
  }

  /** Connects, joins the task, loads the data and reports ready. */
  async start(): Promise<void> {
    const socket: ClientSocket = io(this.options.server, { transports: ['websocket'], reconnection: true });
    this.socket = socket;
    socket.on('round:start', (start) => {
      // Rounds run one at a time; a round that fails reports an error and the client stays in.
      this.busy = this.busy.then(() => this.runRound(start)).catch((error: unknown) => this.fail(error));
    });
    socket.on('round:end', (end) => this.roundEnded(end));
    socket.on('task:status', ({ status }) => {
      if (status === 'completed' || status === 'stopped') this.emit('finished', { status });
    });
    socket.on('server:error', (error) => this.fail(TributaryError.fromBody(error)));
    socket.on('connect', () => {
      // First connect and every reconnect: (re)join so the server knows us again.
      this.join().catch((error: unknown) => this.fail(error));
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

  stop(): void {
    this.socket?.disconnect();
    this.trainer?.dispose();
    this.trainer = undefined;
  }

  private async join(): Promise<void> {
    await cryptoReady();
    this.identity ??= generateSigningKeyPair();
    const socket = this.socket!;
    const { taskId, shard } = this.options;
    const joined: JoinReply = unwrap(
      await socket.emitWithAck('task:join', {
        taskId,
        kind: this.options.kind ?? 'browser',
        identityKey: this.identity.publicKey,
        ...(shard === undefined ? {} : { shard }),
      }),
    );
    const serverKey = bytes(joined.serverKey);
    if (this.serverKey && !equalBytes(this.serverKey, serverKey)) {
      this.stop();
      throw new TributaryError('SERVER_KEY_MISMATCH', `pinned ${fingerprint(this.serverKey)}, got ${fingerprint(serverKey)}`);
    }
    this.serverKey = serverKey;
    this.clientId = joined.clientId;
    if (!this.task) {
      this.task = joined.task;
      this.backend = await this.options.activateBackend(joined.task);
      this.trainer = new Trainer(joined.task.spec.model, joined.task.spec.seed);
      this.lengths = this.trainer.weightLengths;
      this.data = await this.options.data({ task: joined.task, shard: joined.shard });
    }
    unwrap(
      await socket.emitWithAck('client:ready', {
        taskId,
        samples: this.data!.n,
        backend: this.backend,
        cachedVersion: this.global?.version ?? -1,
      }),
    );
    this.emit('joined', {
      clientId: joined.clientId,
      shard: joined.shard,
      task: joined.task,
      samples: this.data!.n,
      backend: this.backend,
      serverKey,
      serverFingerprint: fingerprint(serverKey),
    });
  }

  private async runRound(received: RoundStart): Promise<void> {
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
      await this.runSecureRound(start, start.secure, global.weights);
      return;
    }
    const { delta, train } = await this.train(start, global.weights);
    // Sealed to this round's aggregator key: relays and proxies see ciphertext only.
    const payload = seal(
      encodeUpdate(delta, { bits: start.bits, clipSigma: start.clipSigma, rng: this.rng, residual: this.residual }),
      start.aggregatorKey,
    );
    const chunks = await this.upload(start, payload, train.samples);
    this.emit('uploaded', { round: start.round, bytes: payload.byteLength, chunks, train });
  }

  private async train(start: RoundStart, global: Weights): Promise<{ delta: Weights; train: Omit<TrainResult, 'weights'> }> {
    const shuffleSeed = deriveSeed(this.seed, 'shuffle', start.round);
    const result = await this.trainer!.train(global, this.data!, start.hyper, shuffleSeed, (fraction, loss) => {
      this.emit('progress', { round: start.round, fraction, loss });
    });
    const { weights, ...train } = result;
    return { delta: subtractWeights(weights, global), train };
  }

  /**
   * SecAgg+ from the client's side: keys and shares first (quick, while everyone is
   * online), then training, then the masked input and the unmasking phases. Each request's
   * ack arrives when the server closes that phase.
   */
  private async runSecureRound(start: RoundStart, secure: SecureRoundConfig, global: Weights): Promise<void> {
    const ref = { taskId: start.taskId, round: start.round };
    const index = secure.participants.findIndex((p) => p.clientId === this.clientId);
    if (index < 0) throw new TributaryError('NOT_A_PARTICIPANT', `round ${start.round} config does not list this client`);
    const protocol = new SecAggClient(secure, roundContext(start.taskId, start.round, start.aggregatorKey), index, this.identity!);
    const timeout = start.deadline - Date.now() + SECURE_ACK_SLACK_MS;
    const phase = (name: SecurePhase) => this.emit('secure-phase', { round: start.round, phase: name });

    const { index: _index, ...keys } = protocol.advertise();
    const { advertised } = await this.phaseRequest('secagg:advertise', timeout, { ...ref, ...keys });
    phase('advertised');
    const boxes = await protocol.share(unpackAdvertised(bytes(advertised)));
    const relayed = await this.phaseRequest('secagg:share', timeout, { ...ref, boxes });
    protocol.receive({ sharers: relayed.sharers, boxes: bytes(relayed.boxes) });
    phase('shared');

    const { delta, train } = await this.train(start, global);
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
    const chunks = await this.upload(start, payload, me.samples);
    this.emit('uploaded', { round: start.round, bytes: payload.byteLength, chunks, train });
    phase('uploaded');

    const { survivors } = await this.phaseRequest('secagg:survivors', timeout, ref);
    const signature = protocol.confirm(survivors);
    const { confirmations } = await this.phaseRequest('secagg:confirm', timeout, { ...ref, signature });
    const shares = protocol.reveal(unpackConfirmations(bytes(confirmations)));
    await this.phaseRequest('secagg:reveal', timeout, { ...ref, shares });
    phase('revealed');
  }

  /** A secure-phase request; the server acks when it closes the phase, so the wait is long. */
  private async phaseRequest<E extends SecureEvent>(event: E, timeoutMs: number, request: Parameters<ClientToServerEvents[E]>[0]): Promise<AckValue<E>> {
    // socket.io's timeout() typing loses the event map; the request type is checked by this signature.
    const timed = this.socket!.timeout(timeoutMs) as unknown as { emitWithAck(event: E, request: unknown): Promise<unknown> };
    const reply = await timed.emitWithAck(event, request);
    return unwrap(reply as Reply<AckValue<E>>);
  }

  private async upload(start: RoundStart, payload: Uint8Array, samples: number): Promise<number> {
    const count = Math.max(1, Math.ceil(payload.byteLength / start.chunkBytes));
    for (let index = 0; index < count; ) {
      const data = payload.subarray(index * start.chunkBytes, (index + 1) * start.chunkBytes);
      const ack = unwrap(
        await this.socket!.emitWithAck(
          'update:chunk',
          { taskId: start.taskId, round: start.round, index, count, totalBytes: payload.byteLength, samples },
          data,
        ),
      );
      // The server says where to continue: normally the next chunk, after a resend the one it still needs.
      index = ack.next;
    }
    return count;
  }

  private roundEnded(end: RoundEnd): void {
    this.emit('model-updated', { version: end.modelVersion, accuracy: end.accuracy, loss: end.loss });
  }

  private fail(error: unknown): void {
    this.emit('error', error instanceof Error ? error : new Error(String(error)));
  }
}
