import { describe, expect, it } from 'vitest';
import type { Connection } from '../../client/connection.ts';
import { RoundRunner, type TrainingSetup } from '../../client/round-runner.ts';
import type { Trainer } from '../../client/trainer.ts';
import { encodeWeights } from '../../shared/codec/model-wire.ts';
import { cryptoReady, generateBoxKeyPair, generateSigningKeyPair } from '../../shared/crypto/sodium.ts';
import type { ChunkMeta, RoundStart } from '../../shared/protocol/events.ts';
import { signRoundStart } from '../../shared/protocol/round-signature.ts';
import { TASK_DEFAULTS } from '../../shared/protocol/task.ts';

describe('RoundRunner', () => {
  it('keeps the weights of an attempt superseded before it ran: the next attempt, sent without them, still trains', async () => {
    await cryptoReady();
    const server = generateSigningKeyPair();
    const chunks: ChunkMeta[] = [];
    const errors: unknown[] = [];
    const connection = {
      serverKey: server.publicKey,
      clientId: 'c1',
      sendChunk: async (meta: ChunkMeta) => {
        chunks.push(meta);
        return { next: meta.index + 1, complete: meta.index === meta.count - 1 };
      },
    } as unknown as Connection;
    // A trainer that moves every weight by 0.01: the round needs only its shape.
    const trainer = {
      weightLengths: [3],
      train: async (global: Float32Array[]) => ({ weights: global.map((t) => t.map((v) => v + 0.01)), samples: 5, processed: 5, loss: 0, metrics: {}, durationMs: 1 }),
    } as unknown as Trainer;
    let releaseSetup!: () => void;
    const setupGate = new Promise<void>((resolve) => (releaseSetup = resolve));
    const setup = async (): Promise<TrainingSetup> => {
      await setupGate; // the first config waits here while the second arrives
      return { trainer, data: { n: 5 } as TrainingSetup['data'], heldOut: undefined };
    };
    const runner = new RoundRunner({
      connection, identity: generateSigningKeyPair(), seed: 1, setup, events: { emit: () => true }, measured: () => {}, uploaded: () => {}, fail: (e) => errors.push(e),
    });
    const config = (weights: Uint8Array | null): RoundStart => signRoundStart({
      taskId: 1, round: 1, modelVersion: 0, deadline: Date.now() + 60_000, bits: 8, clipSigma: 3, hyper: TASK_DEFAULTS.hyper, budget: null,
      chunkBytes: 1 << 16, weights, aggregatorKey: generateBoxKeyPair().publicKey, secure: null, metricSums: 0, evaluate: false,
    }, server.secretKey);
    runner.started(config(encodeWeights([Float32Array.of(1, 2, 3)])));
    runner.started(config(null)); // the server counts the weights as sent: the retry carries none
    releaseSetup();
    const until = Date.now() + 10_000;
    while (chunks.length === 0 && errors.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(errors).toEqual([]);
    expect(chunks.at(-1)).toMatchObject({ taskId: 1, round: 1, index: 0 });
    expect(runner.cachedVersion).toBe(0);
  });
});
