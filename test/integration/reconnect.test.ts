import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FederatedClient, type ClientEvents } from '../../client/federated-client.ts';
import { cryptoReady } from '../../shared/crypto/sodium.ts';
import { handDrivenClient, inProcessClient, sealedUpdate, startHarness, type Harness } from '../support/harness.ts';

const client = (h: Harness, taskId: number, shard: number) => inProcessClient(h, taskId, shard);

function record<E extends keyof ClientEvents>(c: FederatedClient, event: E): Array<Parameters<ClientEvents[E]>[0]> {
  const seen: Array<Parameters<ClientEvents[E]>[0]> = [];
  c.on(event, ((info: Parameters<ClientEvents[E]>[0]) => seen.push(info)) as never);
  return seen;
}

describe('reconnects: sessions, resumed uploads and catch-up', () => {
  let h: Harness;
  const clients: FederatedClient[] = [];
  beforeAll(async () => {
    await cryptoReady();
    // 16 KiB chunks: an 8-bit MLP update (~199 KB) travels in 13 of them.
    h = await startHarness({ chunkBytes: 16 * 1024, sessionGraceMs: 20_000 });
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.stop();
  });
  afterAll(() => h.close());

  it('continues an upload from the last acknowledged chunk after the connection drops', async () => {
    const task = await h.createTask({ name: 'resume', shards: 2, clientsPerRound: 2, minUpdates: 2, rounds: 1, trainLimit: 1_200, testLimit: 500 });
    // Every chunk the server receives, by the sender's shard; shard 0's connection is cut right after its 5th.
    const received: Array<{ shard: number; index: number }> = [];
    let cut = false;
    h.app.io.on('connection', (socket) => {
      let shard = -1;
      socket.onAny((event: string, body: { shard?: number; index?: number }) => {
        if (event === 'task:join') shard = body.shard ?? -1;
        if (event !== 'update:chunk') return;
        received.push({ shard, index: body.index! });
        if (!cut && shard === 0 && received.filter((r) => r.shard === 0).length === 5) {
          cut = true;
          socket.conn.close(); // the chunk is still handled, but its ack is lost with the connection
        }
      });
    });
    const a = client(h, task.id, 0);
    const b = client(h, task.id, 1);
    clients.push(a, b);
    const joinedA = record(a, 'joined');
    const uploadedA = record(a, 'uploaded');
    await Promise.all([a.start(), b.start()]);
    await h.app.coordinator.start(task.id);
    await h.waitForStatus(task.id, 'completed', 120_000);

    expect(cut).toBe(true);
    // Reconnected into the same session …
    expect(joinedA.map((j) => j.resumed)).toEqual([false, true]);
    expect(joinedA[1]!.clientId).toBe(joinedA[0]!.clientId);
    // … and the upload went on from chunk 4 (whose ack was lost), never from 0.
    expect(received.filter((r) => r.shard === 0).map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(received.filter((r) => r.shard === 1).map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(uploadedA).toHaveLength(1);
    const [round] = await h.app.store.listRounds(task.id);
    expect(round).toMatchObject({ participants: 2, dropped: 0, late: 0 });
  });

  it('brings a client that missed rounds up to the current model before it trains', async () => {
    const task = await h.createTask({ name: 'catch-up', shards: 2, clientsPerRound: 1, rounds: 4, trainLimit: 1_200, testLimit: 500 });
    const a = client(h, task.id, 0);
    const b = client(h, task.id, 1);
    clients.push(a, b);
    const startsA = record(a, 'round-start');
    await Promise.all([a.start(), b.start()]);
    const runUntil = async (rounds: number) => {
      await h.app.coordinator.start(task.id);
      await h.waitFor(async () => ((await h.app.store.getTask(task.id))!.completedRounds >= rounds), 60_000);
      if (rounds < 4) await h.app.coordinator.pause(task.id);
    };
    await b.pause();
    await runUntil(1); // a trains round 1 alone
    await a.pause();
    await b.resume();
    await runUntil(3); // a misses rounds 2 and 3
    await b.pause();
    await a.resume();
    await runUntil(4);
    await h.waitForStatus(task.id, 'completed');

    expect(startsA[0]).toMatchObject({ round: 1, modelVersion: 0, downloadedWeights: true });
    // Its cached model was version 1; round 4 trains from version 3, sent along with the config.
    expect(startsA.at(-1)).toMatchObject({ round: 4, modelVersion: 3, downloadedWeights: true });
    const rounds = await h.app.store.listRounds(task.id);
    expect(rounds.map((r) => [r.round, r.participants])).toEqual([[1, 1], [2, 1], [3, 1], [4, 1]]);
  });

  it('closes a sync round at its deadline without the straggler, counts it late, and refuses what it sends after', async () => {
    // Uniform work, no over-selection: the round waits for both participants until the deadline.
    const task = await h.createTask({ name: 'late', shards: 2, clientsPerRound: 2, rounds: 1, trainLimit: 2_400, testLimit: 500, roundDeadlineMs: 8_000, scheduling: 'uniform' });
    const fast = client(h, task.id, 0);
    clients.push(fast);
    await fast.start();
    // A participant that is handed the round and does not deliver by the deadline.
    const straggler = await handDrivenClient(h, task.id, { shard: 1 });
    await h.app.coordinator.start(task.id);
    const start = await straggler.nextRoundStart();
    await h.waitForStatus(task.id, 'completed');
    const [round] = await h.app.store.listRounds(task.id);
    // Only the fast client's samples count: its shard of 1,200 less the fifth it holds out for federated evaluation …
    expect(round).toMatchObject({ participants: 1, late: 1, dropped: 0, samples: 960 });
    // … and an update sent after the round closed is refused.
    expect(await straggler.upload(start, sealedUpdate(start, 1e-3))).toMatchObject({ ok: false });
    straggler.socket.disconnect();
  });
});
