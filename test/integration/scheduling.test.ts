import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activateNodeBackend } from '../../client/node/tf.ts';
import { measureThroughput } from '../../client/probe.ts';
import { cryptoReady } from '../../shared/crypto/sodium.ts';
import { inProcessClient, startHarness, type Harness } from '../support/harness.ts';

describe('capability-aware scheduling', () => {
  let h: Harness;
  beforeAll(async () => {
    await cryptoReady();
    h = await startHarness();
  });
  afterAll(() => h.close());

  it('drops a participant far slower than its estimate at the deadline without stalling the round, and corrects its estimate', async () => {
    const task = await h.createTask({ name: 'straggler', shards: 2, clientsPerRound: 2, rounds: 2, trainLimit: 2_400, testLimit: 500, roundDeadlineMs: 5_000 });
    const honest = inProcessClient(h, task.id, 0, {
      activateBackend: async (t) => ({ name: await activateNodeBackend(t.spec.model), throughput: await measureThroughput(t.spec.model) }),
    });
    // Claims to be very fast, trains fifty times slower than it could.
    const boaster = inProcessClient(h, task.id, 1, {
      throttle: 0.02,
      activateBackend: async (t) => ({ name: await activateNodeBackend(t.spec.model), throughput: 100_000 }),
    });
    await Promise.all([honest.start(), boaster.start()]);
    const started = Date.now();
    await h.app.coordinator.start(task.id);
    await h.waitForStatus(task.id, 'completed', 60_000);
    honest.stop();
    boaster.stop();

    const rounds = await h.app.store.listRounds(task.id);
    for (const r of rounds) {
      expect(r).toMatchObject({ participants: 1, late: 1 });
      expect(r.durationMs).toBeLessThan(8_000); // closed at its deadline, not when the straggler would have finished
    }
    expect(Date.now() - started).toBeLessThan(25_000);
    const [first, second] = await Promise.all([1, 2].map((round) => h.app.store.listParticipants(task.id, round)));
    const of = (list: typeof first, late: boolean) => list!.find((p) => (p.outcome === 'late') === late)!;
    expect(of(first, true)).toMatchObject({ outcome: 'late', speed: 100_000 });
    // Its next share of work was sized by the corrected (much lower) estimate (null: its whole shard, 1,200 samples).
    const work = (p: { budget: number | null }) => p.budget ?? 1_200;
    expect(of(second, true).speed).toBeLessThan(of(first, true).speed / 10);
    expect(work(of(second, true))).toBeLessThan(work(of(first, true)));
    expect(of(first, false)).toMatchObject({ outcome: 'delivered' });
  });
});
