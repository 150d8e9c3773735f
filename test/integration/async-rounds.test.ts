import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cryptoReady } from '../../shared/crypto/sodium.ts';
import { withTaskDefaults } from '../../shared/protocol/task.ts';
import { expectCode } from '../support/expect-code.ts';
import { handDrivenClient, inProcessClient, sealedUpdate, startHarness, type Harness } from '../support/harness.ts';

describe('async mode (FedBuff)', () => {
  let h: Harness;
  beforeAll(async () => {
    await cryptoReady();
    h = await startHarness();
  });
  afterAll(() => h.close());

  it('steps without waiting for a straggler, and counts its stale update with a staleness weight', async () => {
    // Buffer of 1: every arriving update is a server step. The straggler is hand-driven: it
    // delivers its round-1 work only once the fast client has made two steps without it.
    const task = await h.createTask({ name: 'fedbuff', mode: 'async', bufferSize: 1, shards: 2, clientsPerRound: 2, rounds: 30, trainLimit: 2_400, testLimit: 500 });
    const fast = inProcessClient(h, task.id, 0);
    await fast.start();
    const straggler = await handDrivenClient(h, task.id, { shard: 1 });
    await h.app.coordinator.start(task.id);
    const work = await straggler.nextRoundStart();
    expect(work).toMatchObject({ round: 1, modelVersion: 0 });
    await h.waitFor(async () => (await h.app.store.listRounds(task.id)).length >= 2);
    expect(await straggler.upload(work, sealedUpdate(work, 1e-3))).toMatchObject({ ok: true, value: { complete: true } });
    await h.waitFor(async () => (await h.app.store.listRounds(task.id)).some((r) => r.staleness > 0));
    await h.app.coordinator.stop(task.id);
    fast.stop();
    straggler.socket.disconnect();

    const rounds = await h.app.store.listRounds(task.id);
    expect(rounds.map((r) => r.round)).toEqual(rounds.map((_, i) => i + 1));
    for (const r of rounds) expect(r.participants).toBe(1);
    // The model moved on without the straggler: fresh steps came first …
    const firstStale = rounds.findIndex((r) => r.staleness > 0);
    expect(firstStale).toBeGreaterThanOrEqual(2);
    expect(rounds.slice(0, firstStale).every((r) => r.staleness === 0 && r.late === 0)).toBe(true);
    // … and its update, handed out for round 1 (model version 0), still counted: discounted by how far the model had moved.
    expect(rounds[firstStale]).toMatchObject({ late: 1, staleness: firstStale, samples: 500 });
  });

  it('refuses secure aggregation in async mode, with the reason', () => {
    expectCode(() => withTaskDefaults({ name: 'x', mode: 'async', secure: true }), 'BAD_REQUEST');
  });
});
