import { encodeWeights } from '../../shared/codec/model-wire.ts';
import type { RoundStart } from '../../shared/protocol/events.ts';
import { signRoundStart } from '../../shared/protocol/round-signature.ts';
import { SEAL_OVERHEAD_BYTES, type KeyPair } from '../../shared/crypto/sodium.ts';
import type { SecureRoundConfig } from '../../shared/secagg/protocol.ts';
import type { TaskRecord } from '../../shared/protocol/task.ts';
import type { Weights } from '../../shared/ml/aggregate.ts';
import type { ClientSession } from '../gateway/clients.ts';
import { RoundCollection, type CollectionOptions } from './round-collection.ts';

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
 */
export function sendRoundStarts(
  clients: readonly ClientSession[],
  base: RoundBase,
  global: { version: number; weights: Weights },
  signingKey: Uint8Array,
  budgets: ReadonlyMap<string, number> = new Map(),
  evaluators: ReadonlySet<string> = new Set(),
): void {
  let weights: Uint8Array | undefined;
  for (const client of clients) {
    const stale = client.cachedVersion !== global.version;
    if (stale) weights ??= encodeWeights(global.weights);
    const budget = budgets.get(client.id) ?? null;
    const evaluate = base.metricSums > 0 && evaluators.has(client.id);
    client.sendRoundStart(signRoundStart({ ...base, modelVersion: global.version, weights: stale ? weights! : null, budget, evaluate }, signingKey));
    client.cachedVersion = global.version;
  }
}

/** Largest sealed plain update: header room plus the packed values (float32 updates need 4 bytes a parameter). */
export function plainUpdateMaxBytes(lengths: readonly number[], bits: number): number {
  const params = lengths.reduce((a, b) => a + b, 0);
  return SEAL_OVERHEAD_BYTES + 64 + 16 * lengths.length + Math.ceil((params * bits) / 8);
}

/** Collects sealed uploads from `uploaders` until each is in, gone, or the deadline passes. */
export function collectUploads<T>(options: {
  taskId: number;
  round: number;
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
