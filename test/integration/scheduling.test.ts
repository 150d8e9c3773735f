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

  it('leaves a participant far slower than its estimate behind at the deadline, and sizes its next work by a corrected estimate', async () => {
    const task = await h.createTask({ name: 'straggler', shards: 2, clientsPerRound: 2, rounds: 2, trainLimit: 2_400, testLimit: 500, roundDeadlineMs: 10_000 });
    const honest = inProcessClient(h, task.id, 0, {
      activateBackend: async (t) => ({ name: await activateNodeBackend(t.spec.model), throughput: await measureThroughput(t.spec) }),
    });
    // Claims to be very fast, trains a thousand times slower than it could: each step is
    // followed by ~1,000× its own time asleep, so no share of work fits any deadline here.
    const boaster = inProcessClient(h, task.id, 1, {
      throttle: 0.001,
      activateBackend: async (t) => ({ name: await activateNodeBackend(t.spec.model), throughput: 100_000 }),
    });
    const boasterUploads: number[] = [];
    boaster.on('uploaded', (e) => boasterUploads.push(e.round));
    let boasterId = '';
    boaster.once('joined', (e) => (boasterId = e.clientId));
    await Promise.all([honest.start(), boaster.start()]);
    await h.app.coordinator.start(task.id);
    await h.waitForStatus(task.id, 'completed');
    honest.stop();
    boaster.stop();

    const rounds = await h.app.store.listRounds(task.id);
    expect(rounds.map((r) => r.round)).toEqual([1, 2]);
    // Round 1 closed at its deadline without the boaster, which never delivered it.
    expect(rounds[0]).toMatchObject({ participants: 1, late: 1, dropped: 0 });
    expect(boasterUploads).not.toContain(1);
    const [first, second] = await Promise.all([1, 2].map((round) => h.app.store.listParticipants(task.id, round)));
    const boasterIn = (list: typeof first) => list!.find((p) => p.clientId === boasterId)!;
    const honestIn = (list: typeof first) => list!.find((p) => p.clientId !== boasterId)!;
    expect(boasterIn(first)).toMatchObject({ outcome: 'late', speed: 100_000 });
    // Round 2 planned its work from the corrected (much lower) estimate; whether it then
    // delivers depends on this machine's speed, so only the plan is asserted.
    // (budget null: its whole shard, 1,200 samples)
    const work = (p: { budget: number | null }) => p.budget ?? 1_200;
    expect(boasterIn(second).speed).toBeLessThan(boasterIn(first).speed / 10);
    expect(work(boasterIn(second))).toBeLessThan(work(boasterIn(first)));
    expect(['delivered', 'late']).toContain(boasterIn(second).outcome);
    expect(honestIn(first)).toMatchObject({ outcome: 'delivered' });
    expect(honestIn(second)).toMatchObject({ outcome: 'delivered' });
  });
});
