import type { EventEmitter } from 'eventemitter3';
import { encodeSecureInput } from '../shared/codec/secure-codec.ts';
import { decodeWeights } from '../shared/codec/model-wire.ts';
import { encodeUpdate } from '../shared/codec/update-codec.ts';
import { encodeMetricLimbs, prependMetricSums } from '../shared/codec/metric-sums.ts';
import { finiteMetrics } from '../shared/ml/evaluate.ts';
import { equalBytes, seal, type KeyPair } from '../shared/crypto/sodium.ts';
import type { LabelledSet } from '../shared/data/dataset.ts';
import { TributaryError } from '../shared/errors.ts';
import { countParameters, subtractWeights, type Weights } from '../shared/ml/aggregate.ts';
import { encodeDistributedInput, distributedDpParams } from '../shared/privacy/distributed.ts';
import { cryptoRng } from '../shared/privacy/noise.ts';
import { attemptOf, type ClientToServerEvents, type RoundStart } from '../shared/protocol/events.ts';
import { verifyRoundStart } from '../shared/protocol/round-signature.ts';
import { createRng, deriveSeed, type Rng } from '../shared/random.ts';
import { SecAggClient } from '../shared/secagg/client.ts';
import { expandSeed } from '../shared/secagg/mask-stream.ts';
import { encodeMaskedUpload, roundContext, unpackAdvertised, unpackConfirmations, type SecureRoundConfig } from '../shared/secagg/protocol.ts';
import { encodeRing } from '../shared/secagg/ring.ts';
import { bytes, unlessAborted, type Connection, type SecureEvent } from './connection.ts';
import type { Trainer, TrainResult } from './trainer.ts';
import type { ClientEvents, SecurePhase, UpdateTransform } from './types.ts';

/** Deferred acks of secure phases may arrive this long after the round's upload deadline. */
const SECURE_ACK_SLACK_MS = 120_000;
/** Round configs already handled, remembered by aggregator key so a re-sent config is not trained twice. */
const REMEMBERED_ATTEMPTS = 8;

/** What training needs on this device, set up once. */
export interface TrainingSetup {
  trainer: Trainer;
  data: LabelledSet;
  /** The device's held-out samples (never trained on), scored for federated evaluation; undefined when the task has none. */
  heldOut: LabelledSet | undefined;
}

export interface RoundRunnerOptions {
  connection: Connection;
  identity: KeyPair;
  /** Seeds the stochastic rounding and each round's shuffle. */
  seed: number;
  /** The trainer and data: a round config only comes once the client reported them ready. */
  setup: () => Promise<TrainingSetup>;
  /** Where the round's events go: the client emits them as they are. */
  events: Pick<EventEmitter<ClientEvents>, 'emit'>;
  /** A round measured this device's training speed, samples/s. */
  measured: (throughput: number) => void;
  /** A plain round's update is in: report the latest speed. */
  uploaded: () => void;
  fail: (error: unknown) => void;
  /** See FederatedClientOptions.transformUpdate. */
  transformUpdate?: UpdateTransform | undefined;
}

type Trained = { delta: Weights; train: Omit<TrainResult, 'weights'> };

/**
 * Runs the rounds this client is selected for, one at a time: verify the signed config,
 * train, encode and seal the update, upload it in chunks; secure rounds through SecAgg+.
 * Holds what outlives a round: the global model it has, the error-feedback residual.
 */
export class RoundRunner {
  private global: { version: number; weights: Weights } | undefined;
  /** Error-feedback residual: what quantization left out, added to the next update. */
  private residual: Weights | undefined;
  private readonly rng: Rng;
  /** Differential-privacy noise: never from a seeded generator. */
  private readonly noiseRng = cryptoRng();
  private busy: Promise<void> = Promise.resolve();
  /** The round attempt being worked on, and the attempts seen lately. */
  private current: { round: number; secure: boolean; abort: AbortController } | undefined;
  private readonly seenAttempts: Uint8Array[] = [];

  constructor(private readonly options: RoundRunnerOptions) {
    this.rng = createRng(deriveSeed(options.seed, 'rounding'));
  }

  /** The global model version held here (-1: none yet); the server skips sending it again. */
  get cachedVersion(): number {
    return this.global?.version ?? -1;
  }

  /**
   * A round config arrived. Rounds run one at a time; a newer config supersedes the attempt
   * in progress (the server moved on, or restarted the round), and a config re-sent after a
   * reconnect for an attempt already under way is ignored.
   */
  started(received: RoundStart): void {
    const key = bytes(received.aggregatorKey);
    if (this.seenAttempts.some((seen) => equalBytes(seen, key))) return;
    this.seenAttempts.push(key);
    if (this.seenAttempts.length > REMEMBERED_ATTEMPTS) this.seenAttempts.shift();
    this.abandon(`round ${received.round} started`);
    const attempt = { round: received.round, secure: received.secure !== null, abort: new AbortController() };
    this.current = attempt;
    this.busy = this.busy
      .then(() => this.run(received, attempt.abort.signal))
      .catch((error: unknown) => {
        // A round that fails reports an error and the client stays in the task.
        if (!attempt.abort.signal.aborted) this.options.fail(error);
      })
      .finally(() => {
        if (this.current === attempt) this.current = undefined;
      });
  }

  /** Gives up the round attempt in progress, if any. */
  abandon(reason: string): void {
    const attempt = this.current;
    if (!attempt || attempt.abort.signal.aborted) return;
    attempt.abort.abort(new TributaryError('ROUND_NOT_ACTIVE', reason));
    this.options.events.emit('round-abandoned', { round: attempt.round, reason });
  }

  /** A secure round cannot go on over a new connection: the server counts this client as dropped. */
  connectionDropped(): void {
    if (this.current?.secure) this.abandon('the connection dropped during a secure round');
  }

  private async run(received: RoundStart, signal: AbortSignal): Promise<void> {
    // Weights are taken even from an attempt superseded before it ran: the server counts them as held and will not send them again.
    if (signal.aborted && !received.weights) signal.throwIfAborted();
    const start = normalized(received);
    verifyRoundStart(start, this.options.connection.serverKey!);
    const setup = await this.options.setup();
    if (start.weights) {
      this.global = { version: start.modelVersion, weights: decodeWeights(start.weights, setup.trainer.weightLengths) };
    }
    signal.throwIfAborted();
    const global = this.global;
    if (!global || global.version !== start.modelVersion) {
      throw new TributaryError('MODEL_MALFORMED', `no weights for model version ${start.modelVersion}`);
    }
    this.options.events.emit('round-start', {
      round: start.round,
      modelVersion: start.modelVersion,
      deadline: start.deadline,
      downloadedWeights: start.weights !== null,
    });
    this.residual ??= setup.trainer.weightLengths.map((n) => new Float32Array(n));
    // Scored before training moves the weights: the model the server sent, on data never trained on.
    const sums = await this.evaluate(setup, start, global.weights);
    const train = () => this.train(setup, start, global.weights, signal);
    if (start.secure) return this.runSecure(start, start.secure, train, sums, signal);
    const { delta, train: trained } = await train();
    // Sealed to this round's aggregator key: relays and proxies see ciphertext only.
    const update = encodeUpdate(delta, { bits: start.bits, clipSigma: start.clipSigma, rng: this.rng, residual: this.residual });
    await this.upload(start, seal(prependMetricSums(sums, start.metricSums, update), start.aggregatorKey), trained, trained.samples, signal);
    this.options.uploaded();
  }

  /** Federated evaluation, when the round asks this device: the objective's metric sums of the sent model on the held-out data. */
  private async evaluate({ trainer, heldOut }: TrainingSetup, start: RoundStart, global: Weights): Promise<Float64Array | undefined> {
    if (!start.evaluate || start.metricSums === 0 || !heldOut) return undefined;
    const sums = await trainer.evaluate(global, heldOut);
    if (sums.length !== start.metricSums) throw new TributaryError('UPDATE_WRONG_LENGTH', `${sums.length} metric sums, the round expects ${start.metricSums}`);
    this.options.events.emit('evaluated', { round: start.round, modelVersion: start.modelVersion, samples: heldOut.n, metrics: finiteMetrics(trainer.objective.metrics(sums)) });
    return sums;
  }

  private async train({ trainer, data }: TrainingSetup, start: RoundStart, global: Weights, signal: AbortSignal): Promise<Trained> {
    const shuffleSeed = deriveSeed(this.options.seed, 'shuffle', start.round);
    const result = await trainer.train(global, data, start.hyper, shuffleSeed, (fraction, loss) => {
      this.options.events.emit('progress', { round: start.round, fraction, loss });
    }, signal, start.budget ?? undefined);
    const { weights, ...train } = result;
    if (train.durationMs > 0) this.options.measured(train.processed / (train.durationMs / 1000));
    const delta = subtractWeights(weights, global);
    const transform = this.options.transformUpdate;
    if (!transform) return { delta, train };
    const retrain = async (set: LabelledSet) => subtractWeights((await trainer.train(global, set, start.hyper, shuffleSeed, undefined, signal)).weights, global);
    return { delta: await transform({ round: start.round, delta, data, retrain }), train };
  }

  /**
   * SecAgg+ from the client's side: keys and shares first (quick, while everyone is
   * online), then training, then the masked input and the unmasking phases. Each request's
   * ack arrives when the server closes that phase.
   */
  private async runSecure(start: RoundStart, secure: SecureRoundConfig, train: () => Promise<Trained>, sums: Float64Array | undefined, signal: AbortSignal): Promise<void> {
    const { connection, identity, events } = this.options;
    const ref = { taskId: start.taskId, round: start.round };
    const index = secure.participants.findIndex((p) => p.clientId === connection.clientId);
    if (index < 0) throw new TributaryError('NOT_A_PARTICIPANT', `round ${start.round} config does not list this client`);
    const protocol = new SecAggClient(secure, roundContext(start.taskId, start.round, start.aggregatorKey), index, identity);
    const timeout = start.deadline - Date.now() + SECURE_ACK_SLACK_MS;
    const phase = (name: SecurePhase) => events.emit('secure-phase', { round: start.round, phase: name });
    const request = <E extends SecureEvent>(event: E, body: Parameters<ClientToServerEvents[E]>[0]) =>
      unlessAborted(signal, connection.phase(event, body, timeout));

    const { index: _index, ...keys } = protocol.advertise();
    const { advertised } = await request('secagg:advertise', { ...ref, ...keys });
    phase('advertised');
    const boxes = await protocol.share(unpackAdvertised(bytes(advertised)));
    const relayed = await request('secagg:share', { ...ref, boxes });
    protocol.receive({ sharers: relayed.sharers, boxes: bytes(relayed.boxes) });
    phase('shared');

    const { delta, train: trained } = await train();
    const me = secure.participants[index]!;
    const model = this.secureInput(delta, start, secure, me.samples);
    const limbs = encodeMetricLimbs(sums, start.metricSums, start.bits);
    const levels = new Uint32Array(model.length + limbs.length);
    levels.set(model);
    levels.set(limbs, model.length);
    const masked = encodeRing(protocol.mask(levels, expandSeed), secure.ringBits);
    await this.upload(start, seal(encodeMaskedUpload(protocol.partnersSignature(), masked), start.aggregatorKey), trained, me.samples, signal);
    phase('uploaded');

    const { survivors } = await request('secagg:survivors', ref);
    const signature = protocol.confirm(survivors);
    const { confirmations, partners } = await request('secagg:confirm', { ...ref, signature });
    const shares = protocol.reveal(unpackConfirmations(bytes(confirmations)), unpackConfirmations(bytes(partners)));
    await request('secagg:reveal', { ...ref, shares });
    phase('revealed');
  }

  /**
   * The levels this device feeds the secure sum: its update scaled by its sample weight
   * and quantized with the round's clips, within the round's norm bound; or under
   * distributed DP, clipped, rounded and noised here, before anything leaves the device.
   */
  private secureInput(delta: Weights, start: RoundStart, secure: SecureRoundConfig, samples: number): Uint32Array {
    const bits = start.bits as Exclude<RoundStart['bits'], 32>;
    const { normBound, noise } = secure.input;
    if (noise) {
      const params = distributedDpParams(countParameters(delta), bits, start.clipSigma, normBound);
      // Levels add up only if every device uses the same range: the one the task's settings give.
      if (secure.clips.some((c) => c !== params.clip)) throw new TributaryError('PRIVACY_INVALID', `round ${start.round} asks for clips that differ from the task's distributed-DP range`);
      return encodeDistributedInput(delta, { params, clipNorm: normBound, variance: noise.variance, ringBits: secure.ringBits, residual: this.residual!, rng: this.rng, noiseRng: this.noiseRng });
    }
    return encodeSecureInput(delta, { bits, clips: secure.clips, scale: samples / secure.sampleScale, residual: this.residual!, rng: this.rng, normBound });
  }

  /**
   * Sends the sealed update in acknowledged chunks. The server's ack names the next chunk it
   * needs, so after a lost ack or a reconnect the upload goes on from there, never from 0.
   */
  private async upload(start: RoundStart, payload: Uint8Array, train: Trained['train'], samples: number, signal: AbortSignal): Promise<void> {
    const count = Math.max(1, Math.ceil(payload.byteLength / start.chunkBytes));
    for (let index = 0; index < count; ) {
      signal.throwIfAborted();
      const data = payload.subarray(index * start.chunkBytes, (index + 1) * start.chunkBytes);
      const meta = { taskId: start.taskId, round: start.round, index, count, totalBytes: payload.byteLength, samples, attempt: attemptOf(start.aggregatorKey) };
      const ack = await unlessAborted(signal, this.options.connection.sendChunk(meta, data));
      index = ack.next;
    }
    this.options.events.emit('uploaded', { round: start.round, bytes: payload.byteLength, chunks: count, train });
  }
}

/** Browsers receive binary as ArrayBuffer, Node as Buffer: one shape before verifying. */
function normalized(received: RoundStart): RoundStart {
  return {
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
}
