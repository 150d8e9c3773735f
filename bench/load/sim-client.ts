import { request } from 'node:http';
import type { Socket as NetSocket } from 'node:net';
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import { bytes, unlessAborted, type SecureEvent } from '../../client/connection.ts';
import { prependMetricSums } from '../../shared/codec/metric-sums.ts';
import { encodeSecureInput } from '../../shared/codec/secure-codec.ts';
import { encodeUpdate } from '../../shared/codec/update-codec.ts';
import { equalBytes, fingerprint, seal, sign, toBase64, type KeyPair } from '../../shared/crypto/sodium.ts';
import { TributaryError } from '../../shared/errors.ts';
import { isTransientRefusal, joinRetryDelayMs, pause } from '../../shared/protocol/join-retry.ts';
import {
  attemptOf,
  joinProofMessage,
  type ChunkAck,
  type ChunkMeta,
  type AckValue,
  type ClientEvent,
  type ClientToServerEvents,
  type EventBody,
  type Reply,
  type RoundStart,
  type ServerToClientEvents,
} from '../../shared/protocol/events.ts';
import { verifyRoundStart } from '../../shared/protocol/round-signature.ts';
import { createRng, deriveSeed } from '../../shared/random.ts';
import { SecAggClient } from '../../shared/secagg/client.ts';
import { expandSeed } from '../../shared/secagg/mask-stream.ts';
import { encodeMaskedUpload, roundContext, unpackAdvertised, unpackConfirmations, type SecureRoundConfig } from '../../shared/secagg/protocol.ts';
import { encodeRing } from '../../shared/secagg/ring.ts';
import type { SecureInput, WorkerCounters } from './messages.ts';

type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** Handshake requests (challenge, join, ready) unanswered this long fail the join; the next connection tries again. */
const HANDSHAKE_TIMEOUT_MS = 120_000;
/** As client/connection.ts: an upload chunk unanswered this long is sent again. */
const CHUNK_TIMEOUT_MS = 30_000;
/** As client/round-runner.ts: round configs remembered by aggregator key, so a re-sent one is not run twice. */
const REMEMBERED_ATTEMPTS = 8;
/** As client/round-runner.ts: a secure phase's ack may come this long after the round's deadline. */
const SECURE_ACK_SLACK_MS = 120_000;

/** What every simulated client of a worker shares. */
export interface SimContext {
  url: string;
  taskId: number;
  lengths: readonly number[];
  samples: number;
  seed: number;
  /** Seeded random deltas (no training): each upload quantizes one of them with its own rounding seed. */
  deltas: ReadonlyArray<Float32Array[]>;
  counters: WorkerCounters;
  uploaded(round: number, at: number): void;
  /** A secure round's levels whose masked upload the server acknowledged: the bench checks the published sum against them. */
  secured(input: SecureInput): void;
  failed(error: Error): void;
}

function unwrap<T>(reply: Reply<T>): T {
  if (reply.ok) return reply.value;
  throw TributaryError.fromBody(reply.error);
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** A JSON POST from a given source address (global fetch cannot pick one); a coded error reply is thrown as its TributaryError. */
function postFrom(localAddress: string, url: URL, body: unknown): Promise<unknown> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', localAddress, agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (part: Buffer) => parts.push(part));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        const parsed = (() => {
          try {
            return JSON.parse(text) as { code?: unknown; message?: unknown };
          } catch {
            return {};
          }
        })();
        if (res.statusCode === 200) return resolve(parsed);
        reject(TributaryError.fromBody({ code: parsed.code, message: typeof parsed.message === 'string' ? parsed.message : `HTTP ${res.statusCode}` }));
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** Browsers receive binary as ArrayBuffer, Node as Buffer: one shape before verifying (as client/round-runner.ts does). */
function normalized(received: RoundStart): RoundStart {
  return {
    ...received,
    weights: received.weights && bytes(received.weights),
    aggregatorKey: bytes(received.aggregatorKey),
    secure: received.secure && { ...received.secure, graphSeed: bytes(received.secure.graphSeed), identityKeys: bytes(received.secure.identityKeys) },
    signature: bytes(received.signature),
  };
}

/**
 * One lightweight simulated edge client on a real socket: the product's join (open
 * enrollment of an Ed25519 identity, challenge, signed proof, join that resumes its session
 * after a reconnect, ready), the real client's checks of each round config (the pinned
 * server key's signature, the weights' size and version), and a sealed 8-bit plain update
 * of the model's real size uploaded in acknowledged chunks, resuming from the server's
 * `next`; in a secure round, SecAgg+ as the real client runs it (shared/secagg/client.ts)
 * around a masked upload. No TF.js: the delta is seeded random values and no weights are kept, only the
 * version this client holds. Mirrors client/connection.ts and client/round-runner.ts,
 * which open their socket without a source address.
 */
export class SimClient {
  private socket: ClientSocket | undefined;
  /** The current connection: aborted when it drops, so its join is given up. */
  private link: AbortController | undefined;
  private joinedGate = gate();
  private pinned: Uint8Array | undefined;
  private resumeWith: { clientId: string; token: Uint8Array } | undefined;
  private cachedVersion = -1;
  private readonly seenAttempts: Uint8Array[] = [];
  private current: AbortController | undefined;
  private busy: Promise<void> = Promise.resolve();
  private firstJoin = gate();
  private everJoined = false;
  /** TCP bytes of closed connections, and the live connection's socket. */
  private closedIn = 0;
  private closedOut = 0;
  private tcp: NetSocket | undefined;

  constructor(
    readonly index: number,
    readonly address: string,
    private readonly identity: KeyPair,
    private readonly context: SimContext,
  ) {}

  get joined(): boolean {
    return this.everJoined;
  }

  /** Bytes read and written on all of this client's connections so far. */
  wireBytes(): { in: number; out: number } {
    return { in: this.closedIn + (this.tcp?.bytesRead ?? 0), out: this.closedOut + (this.tcp?.bytesWritten ?? 0) };
  }

  /** Binds the identity key to the task by its open enrollment, as client/enrollment.ts does, from this client's address. */
  async enroll(): Promise<void> {
    const { url, taskId } = this.context;
    for (let attempt = 0; ; attempt++) {
      try {
        const reply = (await postFrom(this.address, new URL(`/api/tasks/${taskId}/enroll`, url), { identityKey: toBase64(this.identity.publicKey) })) as { taskId?: number };
        if (reply.taskId !== taskId) throw new TributaryError('ENROLLMENT_TOKEN_INVALID', `enrolled in task ${reply.taskId}, not ${taskId}`);
        return;
      } catch (error) {
        // 30 enrollments a minute per address: a run that outpaces it waits its window out.
        if (error instanceof TributaryError && error.code === 'RATE_LIMITED' && attempt < 10) {
          await new Promise((resolve) => setTimeout(resolve, 6_000));
          continue;
        }
        throw error;
      }
    }
  }

  /** Connects from this client's address; resolves at the first join. Every later connection joins again by itself. */
  connect(): Promise<void> {
    const options = { transports: ['websocket'], reconnection: true, forceNew: true, localAddress: this.address } as Partial<ManagerOptions & SocketOptions>;
    const socket: ClientSocket = io(this.context.url, options);
    this.socket = socket;
    socket.io.on('open', () => {
      // The websocket's TCP socket (engine.io-client on Node uses `ws`): the bytes this client puts on the wire.
      const ws = (socket.io.engine?.transport as unknown as { ws?: { _socket?: NetSocket } } | undefined)?.ws;
      const tcp = ws?._socket;
      if (!tcp) return;
      this.tcp = tcp;
      tcp.once('close', () => {
        this.closedIn += tcp.bytesRead;
        this.closedOut += tcp.bytesWritten;
        if (this.tcp === tcp) this.tcp = undefined;
      });
    });
    socket.on('round:start', (start, received) => {
      received?.(); // as Connection: on arrival
      this.started(start);
    });
    socket.on('server:error', (error) => this.fail(TributaryError.fromBody(error)));
    socket.on('connect', () => {
      const link = new AbortController();
      this.link = link;
      this.joinUntilAdmitted(link.signal).catch((error: unknown) => {
        if (link.signal.aborted) return;
        this.fail(error);
        // A join that failed on a live connection: start over on a fresh one.
        socket.io.engine?.close();
      });
    });
    socket.on('disconnect', (reason) => {
      this.link?.abort(new Error(`the connection dropped (${reason})`));
      this.link = undefined;
      this.joinedGate = gate();
      if (reason === 'io client disconnect') return;
      const { counters } = this.context;
      counters.reconnects++;
      counters.dropReasons[reason] = (counters.dropReasons[reason] ?? 0) + 1;
    });
    return this.firstJoin.promise;
  }

  /** Drops the connection as a network failure would (client/connection.ts simulateDrop); socket.io reconnects by itself. */
  drop(): void {
    this.socket?.io.engine?.close();
  }

  close(): void {
    this.current?.abort(new Error('closed'));
    this.socket?.disconnect();
  }

  private fail(error: unknown): void {
    this.context.counters.errors++;
    const code = error instanceof TributaryError ? error.code : 'OTHER';
    this.context.counters.errorCodes[code] = (this.context.counters.errorCodes[code] ?? 0) + 1;
    this.context.failed(error instanceof Error ? error : new Error(String(error)));
  }

  /** As Connection.joinUntilAdmitted: a refusal for now is asked again on this connection after a wait. */
  private async joinUntilAdmitted(signal: AbortSignal): Promise<void> {
    for (let retry = 0; ; retry++) {
      try {
        return await this.join(signal);
      } catch (error) {
        if (signal.aborted || !isTransientRefusal(error)) throw error;
        this.context.counters.joinRetries++;
        await pause(joinRetryDelayMs(retry), signal);
      }
    }
  }

  private async join(signal: AbortSignal): Promise<void> {
    const { taskId, counters } = this.context;
    const { nonce } = await this.ask(signal, 'auth:challenge', {});
    const proof = sign(joinProofMessage(bytes(nonce), taskId, 'edge'), this.identity.secretKey);
    const resume = this.resumeWith;
    const joined = await this.ask(signal, 'task:join', {
      taskId,
      kind: 'edge',
      proof,
      identityKey: this.identity.publicKey,
      // As the demo's edge clients (`client --shard i`): a shard of their own.
      shard: this.index % 10_000,
      ...(resume ? { resume } : {}),
    });
    const serverKey = bytes(joined.serverKey);
    if (this.pinned && !equalBytes(this.pinned, serverKey)) {
      throw new TributaryError('SERVER_KEY_MISMATCH', `pinned ${fingerprint(this.pinned)}, got ${fingerprint(serverKey)}`);
    }
    this.pinned = serverKey;
    this.resumeWith = { clientId: joined.clientId, token: bytes(joined.resumeToken) };
    if (resume) {
      if (joined.resumed) counters.resumed++;
      else {
        // A new session: the round in progress went with the old one.
        counters.sessionsLost++;
        this.current?.abort(new TributaryError('ROUND_NOT_ACTIVE', 'the server no longer holds this client\'s session'));
      }
    }
    await this.ask(signal, 'client:ready', this.readiness());
    this.joinedGate.open();
    if (!this.everJoined) {
      this.everJoined = true;
      counters.joined++;
      this.firstJoin.open();
    }
  }

  private readiness(): EventBody<'client:ready'> {
    return { taskId: this.context.taskId, samples: this.context.samples, backend: 'sim', cachedVersion: this.cachedVersion, paused: false, capabilities: { throughput: 0 } };
  }

  private async ask<E extends ClientEvent>(signal: AbortSignal, event: E, body: EventBody<E>, timeoutMs = HANDSHAKE_TIMEOUT_MS): Promise<AckValue<E>> {
    signal.throwIfAborted();
    const sender = this.socket!.timeout(timeoutMs) as unknown as { emitWithAck(event: E, body: unknown): Promise<Reply<AckValue<E>>> };
    return unwrap(await unlessAborted(signal, sender.emitWithAck(event, body)));
  }

  /** As RoundRunner.started: one attempt at a time, a re-sent config ignored, a newer one superseding. */
  private started(received: RoundStart): void {
    this.context.counters.roundConfigs++;
    const key = bytes(received.aggregatorKey);
    if (this.seenAttempts.some((seen) => equalBytes(seen, key))) return;
    this.seenAttempts.push(key);
    if (this.seenAttempts.length > REMEMBERED_ATTEMPTS) this.seenAttempts.shift();
    this.current?.abort(new TributaryError('ROUND_NOT_ACTIVE', `round ${received.round} started`));
    const attempt = new AbortController();
    this.current = attempt;
    let start: RoundStart;
    try {
      start = this.accept(received);
    } catch (error) {
      return this.fail(error);
    }
    this.busy = this.busy
      .then(() => this.run(start, attempt.signal))
      .catch((error: unknown) => {
        if (!attempt.signal.aborted) this.fail(error);
      });
  }

  /**
   * Verifies a config as it arrives and takes its weights in: as RoundRunner.run, weights
   * count as held even from an attempt superseded before it ran. Only their version is
   * kept: the real client trains on them, a simulated one would only hold 800 KB for each
   * config in flight (on a thousand participants a worker, gigabytes the collector must
   * walk while the sockets' heartbeats wait).
   */
  private accept(received: RoundStart): RoundStart {
    const start = normalized(received);
    verifyRoundStart(start, this.pinned!);
    if (start.weights) {
      const expected = this.context.lengths.reduce((a, b) => a + b, 0) * 4;
      if (start.weights.byteLength !== expected) throw new TributaryError('MODEL_MALFORMED', `expected ${expected} bytes of weights, got ${start.weights.byteLength}`);
      this.context.counters.weightsReceived++;
      this.cachedVersion = start.modelVersion;
    }
    return { ...start, weights: null };
  }

  private async run(start: RoundStart, signal: AbortSignal): Promise<void> {
    const { seed, deltas, counters } = this.context;
    signal.throwIfAborted();
    if (this.cachedVersion !== start.modelVersion) throw new TributaryError('MODEL_MALFORMED', `no weights for model version ${start.modelVersion}`);
    // Let the socket's other messages in before the synchronous encode, as the real trainer yields.
    await new Promise((resolve) => setImmediate(resolve));
    signal.throwIfAborted();
    const delta = deltas[(this.index + start.round) % deltas.length]!;
    const rng = createRng(deriveSeed(seed, 'load-update', this.index, start.round));
    if (start.secure) await this.runSecure(start, start.secure, delta, rng, signal);
    else {
      const update = encodeUpdate(delta, { bits: start.bits, clipSigma: start.clipSigma, rng });
      // A device not asked to evaluate sends the round's metric sums as zeros (test/support/harness.ts plainPayload).
      await this.upload(start, seal(prependMetricSums(undefined, start.metricSums, update), start.aggregatorKey), signal);
    }
    counters.uploads++;
    this.context.uploaded(start.round, Date.now());
    // As the real client after an upload: report readiness again, quietly not when not joined.
    const link = this.link;
    if (link && !link.signal.aborted) await this.ask(link.signal, 'client:ready', this.readiness()).catch(() => undefined);
  }

  /** RoundRunner.runSecure, with the seeded delta for training: keys and shares, the masked upload, then confirming and revealing. */
  private async runSecure(start: RoundStart, secure: SecureRoundConfig, delta: Float32Array[], rng: ReturnType<typeof createRng>, signal: AbortSignal): Promise<void> {
    if (start.metricSums > 0) throw new TributaryError('BAD_REQUEST', 'the load bench\'s secure rounds carry no federated evaluation');
    const ref = { taskId: start.taskId, round: start.round };
    const index = secure.participants.findIndex((p) => p.clientId === this.resumeWith?.clientId);
    if (index < 0) throw new TributaryError('NOT_A_PARTICIPANT', `round ${start.round} config does not list this client`);
    const protocol = new SecAggClient(secure, roundContext(start.taskId, start.round, start.aggregatorKey), index, this.identity);
    const timeout = start.deadline - Date.now() + SECURE_ACK_SLACK_MS;
    const request = <E extends SecureEvent>(event: E, body: EventBody<E>) => this.ask(signal, event, body, timeout);

    const { index: _index, ...keys } = protocol.advertise();
    const { advertised } = await request('secagg:advertise', { ...ref, ...keys });
    const boxes = await protocol.share(unpackAdvertised(bytes(advertised)));
    const relayed = await request('secagg:share', { ...ref, boxes });
    protocol.receive({ sharers: relayed.sharers, boxes: bytes(relayed.boxes) });

    const weight = secure.participants[index]!.samples;
    const residual = delta.map((d) => new Float32Array(d.length));
    const levels = encodeSecureInput(delta, { bits: start.bits as 8, clips: secure.clips, scale: weight / secure.sampleScale, residual, rng, normBound: secure.input.normBound });
    const masked = encodeRing(protocol.mask(levels, expandSeed), secure.ringBits);
    await this.upload(start, seal(encodeMaskedUpload(protocol.partnersSignature(), masked), start.aggregatorKey), signal);
    this.context.secured({ round: start.round, levels, weight, ringBits: secure.ringBits, clips: secure.clips, sampleScale: secure.sampleScale });

    const { survivors } = await request('secagg:survivors', ref);
    const signature = protocol.confirm(survivors);
    const { confirmations, partners } = await request('secagg:confirm', { ...ref, signature });
    const shares = protocol.reveal(unpackConfirmations(bytes(confirmations)), unpackConfirmations(bytes(partners)));
    await request('secagg:reveal', { ...ref, shares });
  }

  /** RoundRunner.upload: acknowledged chunks, going on from the chunk the server names. */
  private async upload(start: RoundStart, payload: Uint8Array, signal: AbortSignal): Promise<void> {
    const count = Math.max(1, Math.ceil(payload.byteLength / start.chunkBytes));
    for (let index = 0; index < count; ) {
      signal.throwIfAborted();
      const data = payload.subarray(index * start.chunkBytes, (index + 1) * start.chunkBytes);
      const meta = { taskId: start.taskId, round: start.round, index, count, totalBytes: payload.byteLength, samples: this.context.samples, attempt: attemptOf(start.aggregatorKey) };
      const ack = await unlessAborted(signal, this.sendChunk(meta, data));
      index = ack.next;
    }
  }

  /** Connection.sendChunk: only while joined (volatile), and sent again when its answer does not come. */
  private async sendChunk(meta: ChunkMeta, data: Uint8Array): Promise<ChunkAck> {
    for (;;) {
      await this.joinedGate.promise;
      const sender = this.socket!.volatile.timeout(CHUNK_TIMEOUT_MS) as unknown as {
        emitWithAck(event: 'update:chunk', meta: ChunkMeta, data: Uint8Array): Promise<Reply<ChunkAck>>;
      };
      let reply: Reply<ChunkAck>;
      try {
        reply = await sender.emitWithAck('update:chunk', meta, data);
      } catch {
        continue;
      }
      return unwrap(reply);
    }
  }
}
