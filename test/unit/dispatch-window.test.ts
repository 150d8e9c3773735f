import { beforeAll, describe, expect, it } from 'vitest';
import { ClientSession } from '../../server/gateway/clients.ts';
import { sendRoundStarts, type RoundBase } from '../../server/rounds/dispatch.ts';
import { cryptoReady, generateBoxKeyPair, generateSigningKeyPair, randomBytes } from '../../shared/crypto/sodium.ts';
import type { RoundStart } from '../../shared/protocol/events.ts';
import { TASK_DEFAULTS } from '../../shared/protocol/task.ts';

/**
 * Round configs that carry the model go out a window of 64 at a time, the next when a
 * client answers that one arrived; configs without weights go at once; a config still
 * waiting for a slot is not sent once a newer attempt reached its client.
 */

interface Delivery {
  client: string;
  start: RoundStart;
  arrived: () => void;
}

let signingKey: Uint8Array;
beforeAll(async () => {
  await cryptoReady();
  signingKey = generateSigningKeyPair().secretKey;
});

function clientsWithLinks(count: number, deliveries: Delivery[]): ClientSession[] {
  return Array.from({ length: count }, (_, i) => {
    const session = new ClientSession({ id: `c${i}`, taskId: 1, kind: 'edge', identityKey: randomBytes(32), shard: i, resumeToken: randomBytes(32) });
    session.attach({
      bytesRead: () => 0,
      sendRoundStart: (start) => new Promise<void>((resolve) => deliveries.push({ client: session.id, start, arrived: resolve })),
      drop: () => undefined,
    });
    return session;
  });
}

function base(round: number): RoundBase {
  return { taskId: 1, round, deadline: 0, bits: 8, clipSigma: 3, hyper: TASK_DEFAULTS.hyper, chunkBytes: 1 << 16, aggregatorKey: generateBoxKeyPair().publicKey, secure: null, metricSums: 0 };
}

const global = { version: 3, weights: [new Float32Array([1, 2, 3, 4])] };

/** Lets the sender's turns of the event loop and its window's promises run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('sendRoundStarts', () => {
  it('sends model downloads 64 at a time, the next as one arrives, and weightless configs at once', async () => {
    const deliveries: Delivery[] = [];
    const clients = clientsWithLinks(200, deliveries);
    for (const c of clients.slice(150)) c.cachedVersion = global.version; // these hold the model already
    const done = sendRoundStarts(clients, base(4), global, signingKey);
    await settle();
    const withWeights = () => deliveries.filter((d) => d.start.weights !== null);
    expect(withWeights()).toHaveLength(64);
    expect(deliveries.filter((d) => d.start.weights === null).map((d) => d.client)).toEqual(clients.slice(150).map((c) => c.id));

    for (const d of withWeights().slice(0, 10)) d.arrived();
    await settle();
    expect(withWeights()).toHaveLength(74);

    for (let n = 0; n < 10 && deliveries.some((d) => d.start.weights); n++) {
      for (const d of deliveries) d.arrived();
      await settle();
    }
    await done;
    expect(withWeights().map((d) => d.client)).toEqual(clients.slice(0, 150).map((c) => c.id));
    expect(clients.every((c) => c.cachedVersion === global.version)).toBe(true);
  });

  it('drops a queued config once a newer attempt has reached its client', async () => {
    const deliveries: Delivery[] = [];
    const clients = clientsWithLinks(100, deliveries);
    const first = base(4);
    void sendRoundStarts(clients, first, global, signingKey);
    await settle();
    expect(deliveries).toHaveLength(64);
    const second = base(4);
    void sendRoundStarts(clients, second, { ...global, version: 4 }, signingKey);
    await settle();
    for (let n = 0; n < 10; n++) {
      for (const d of deliveries) d.arrived();
      await settle();
    }
    const of = (key: Uint8Array) => deliveries.filter((d) => d.start.aggregatorKey === key).map((d) => d.client);
    expect(of(first.aggregatorKey)).toEqual(clients.slice(0, 64).map((c) => c.id));
    expect(of(second.aggregatorKey)).toEqual(clients.map((c) => c.id));
  });
});
