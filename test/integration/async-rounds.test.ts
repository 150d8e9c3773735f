import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cryptoReady } from '../../shared/crypto/sodium.ts';
import { withTaskDefaults } from '../../shared/protocol/task.ts';
import { expectCode } from '../support/expect-code.ts';
import { inProcessClient, startHarness, type Harness } from '../support/harness.ts';

const client = (h: Harness, taskId: number, shard: number, throttle = 1) => inProcessClient(h, taskId, shard, { throttle });

describe('async mode (FedBuff)', () => {
  let h: Harness;
  beforeAll(async () => {
    await cryptoReady();
    h = await startHarness();
  });
  afterAll(() => h.close());

  it('steps without waiting for a straggler, and counts its stale update with a staleness weight', async () => {
    // Buffer of 1: every arriving update is a server step. The fast client makes several
    // while the slow one (a quarter of its speed) trains on the model it was handed.
    const task = await h.createTask({ name: 'fedbuff', mode: 'async', bufferSize: 1, shards: 2, clientsPerRound: 2, rounds: 60, trainLimit: 2_400, testLimit: 500 });
    const fast = client(h, task.id, 0);
    const slow = client(h, task.id, 1, 0.25);
    const slowUploads: number[] = [];
    slow.on('uploaded', (e) => slowUploads.push(e.round));
    await Promise.all([fast.start(), slow.start()]);
    await h.app.coordinator.start(task.id);
    await h.waitFor(async () => (await h.app.store.listRounds(task.id)).some((r) => r.staleness > 0), 120_000);
    await h.app.coordinator.stop(task.id);
    fast.stop();
    slow.stop();

    const rounds = await h.app.store.listRounds(task.id);
    expect(rounds.map((r) => r.round)).toEqual(rounds.map((_, i) => i + 1));
    for (const r of rounds) expect(r.participants).toBe(1);
    // The model moved on without the slow client: fresh steps came first …
    const firstStale = rounds.findIndex((r) => r.staleness > 0);
    expect(firstStale).toBeGreaterThanOrEqual(1);
    expect(rounds.slice(0, firstStale).every((r) => r.staleness === 0 && r.late === 0)).toBe(true);
    // … and its update, handed out for round 1, still counted: discounted by its staleness.
    expect(slowUploads[0]).toBe(1);
    expect(rounds[firstStale]).toMatchObject({ late: 1, staleness: firstStale });
  });

  it('refuses secure aggregation in async mode, with the reason', () => {
    expectCode(() => withTaskDefaults({ name: 'x', mode: 'async', secure: true }), 'BAD_REQUEST');
  });
});
