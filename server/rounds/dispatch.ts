import pLimit from 'p-limit';
import { encodeWeights } from '../../shared/codec/model-wire.ts';
import { TributaryError } from '../../shared/errors.ts';
import { attemptOf, type ChunkAck, type ChunkMeta, type RoundStart } from '../../shared/protocol/events.ts';
import { signRoundStart } from '../../shared/protocol/round-signature.ts';
import { SEAL_OVERHEAD_BYTES, type KeyPair } from '../../shared/crypto/sodium.ts';
import type { SecureRoundConfig } from '../../shared/secagg/protocol.ts';
import type { TaskRecord } from '../../shared/protocol/task.ts';
import type { Weights } from '../../shared/ml/aggregate.ts';
import type { ClientSession } from '../gateway/clients.ts';
import { RoundCollection, type CollectionOptions } from './round-collection.ts';
import type { CoordinatorOptions } from './runner.ts';

/**
 * Handing out work and taking it back, the same for sync rounds and async dispatches:
 * signed round configs (weights only to clients whose copy is stale) and collections of
 * sealed, chunked uploads.
 */

export type RoundBase = Omit<RoundStart, 'signature' | 'weights' | 'modelVersion' | 'budget' | 'evaluate'>;

export function roundBase(task: TaskRecord, chunkBytes: number, round: number, deadline: number, aggregator: KeyPair, secure: SecureRoundConfig | null, metricSums = 0): RoundBase {
  const { spec, id } = task;
  return {
    taskId: id,
    round,
    deadline,
    bits: spec.bits,
    clipSigma: spec.clipSigma,
    hyper: spec.hyper,
    chunkBytes,
    aggregatorKey: aggregator.publicKey,
    secure,
    metricSums,
  };
}

/**
 * Signs and sends a round config to each client, with the global weights to those whose
 * copy is stale and each one's share of work (`budgets`, by session id).
 *
 * Configs that carry the weights go out a window at a time: the next when a client says
 * one arrived. Sent all at once, a thousand 800-KB models sat in socket buffers on the way
 * (the kernel's TCP memory ran out on a 4,000-client round, and it dropped connections),
 * every download crawled, and the heartbeats queued behind them. Configs without weights
 * go at once, a few each turn of the event loop.
 */
export async function sendRoundStarts(
  clients: readonly ClientSession[],
  base: RoundBase,
  global: { version: number; weights: Weights },
  signingKey: Uint8Array,
  budgets: ReadonlyMap<string, number> = new Map(),
  evaluators: ReadonlySet<string> = new Set(),
): Promise<void> {
  // Read now, before the first turn: the model must not move under the configs still to send.
  const version = global.version;
  const weights = clients.some((c) => c.cachedVersion !== version) ? encodeWeights(global.weights) : undefined;
  const attempt = base.aggregatorKey;
  for (const client of clients) offered.set(client, attempt);
  const downloads = pLimit(DOWNLOADS_AT_ONCE);
  const send = (client: ClientSession): Promise<void> => {
    // A newer attempt's config reached this client while this one waited for a window slot.
    if (offered.get(client) !== attempt) return Promise.resolve();
    const stale = client.cachedVersion !== version;
    const budget = budgets.get(client.id) ?? null;
    const evaluate = base.metricSums > 0 && evaluators.has(client.id);
    client.cachedVersion = version;
    return client.sendRoundStart(signRoundStart({ ...base, modelVersion: version, weights: stale ? weights! : null, budget, evaluate }, signingKey));
  };
  const downloading: Promise<void>[] = [];
  for (let i = 0; i < clients.length; i++) {
    if (i > 0 && i % SENDS_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
    const client = clients[i]!;
    if (client.cachedVersion === version) void send(client);
    else downloading.push(downloads(() => send(client)));
  }
  await Promise.all(downloading);
}

/** The attempt (its aggregator key) whose config each session was last given. */
const offered = new WeakMap<ClientSession, Uint8Array>();

/** Model downloads in flight per process: 64 × 800 KB (the MLP) keeps the sockets' buffers near 50 MB. */
const DOWNLOADS_AT_ONCE = 64;

/** Configs handed to sockets between two turns of the event loop. */
const SENDS_PER_TURN = 16;

/** Largest sealed plain update: header room plus the packed values (float32 updates need 4 bytes a parameter). */
export function plainUpdateMaxBytes(lengths: readonly number[], bits: number): number {
  const params = lengths.reduce((a, b) => a + b, 0);
  return SEAL_OVERHEAD_BYTES + 64 + 16 * lengths.length + Math.ceil((params * bits) / 8);
}

/** Collects sealed uploads from `uploaders` until each is in, gone, or the deadline passes. */
export function collectUploads<T>(options: {
  taskId: number;
  round: number;
  /** The attempt's aggregator key, the one its configs carry: the collection takes that attempt's chunks only. */
  aggregatorKey: Uint8Array;
  uploaders: readonly ClientSession[];
  deadline: number;
  enough?: number;
  maxBytes: number;
  maxChunkBytes: number;
  decode: CollectionOptions<T>['decode'];
}): RoundCollection<T> {
  const byId = new Map(options.uploaders.map((p) => [p.id, p]));
  return new RoundCollection<T>({
    taskId: options.taskId,
    round: options.round,
    attempt: attemptOf(options.aggregatorKey),
    participants: options.uploaders.map((p) => p.id),
    deadline: options.deadline,
    ...(options.enough === undefined ? {} : { enough: options.enough }),
    maxBytes: options.maxBytes,
    maxChunkBytes: options.maxChunkBytes,
    decode: options.decode,
    maxSamples: (clientId) => byId.get(clientId)?.samples ?? 0,
    wireBytes: (clientId) => byId.get(clientId)?.wireBytes() ?? 0,
  });
}

/** A chunk for the round collecting now: acknowledged, noted on the client's session, and its progress told to watchers. */
export function acceptUploadChunk(
  collection: RoundCollection<unknown> | undefined,
  options: Pick<CoordinatorOptions, 'clients' | 'events'>,
  task: TaskRecord,
  clientId: string,
  meta: ChunkMeta,
  data: Uint8Array,
): ChunkAck {
  if (!collection) throw new TributaryError('ROUND_NOT_ACTIVE', 'no round is collecting updates');
  try {
    const ack = collection.acceptChunk(clientId, meta, data);
    const client = options.clients.get(clientId);
    client?.noteUpload(meta.round, ack.complete);
    if (ack.complete) client?.settleRound(meta.round);
    return ack;
  } finally {
    options.events.uploadProgress({ taskId: task.id, round: collection.round, received: collection.receivedCount, expected: task.spec.clientsPerRound });
  }
}
