import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { requireTask, type Store } from '../../../server/store/store.ts';
import { TASK_DEFAULTS, withTaskDefaults, type ParticipantRecord, type RoundRecord, type TaskSpec, type TaskStatus } from '../../../shared/protocol/task.ts';
import { expectDateString, expectRejection, expectRejectsWithCode, type StoreHarness } from './common.ts';

/** A spec that sets every field away from its default, floats and nested objects included. */
const UNUSUAL_SPEC: TaskSpec = {
  name: 'unusual — ünïcode ✓',
  model: { kind: 'mlp', hidden: [24, 12] },
  data: { kind: 'tabular', columns: [{ name: 'x', type: 'numeric', min: -2.5, max: 7 }, { name: 'y', type: 'categorical', categories: ['a', 'b', 'c'] }], label: 'y' },
  dataset: 'own',
  partition: { kind: 'sizes', sizes: [3, 1.5, 0.25] },
  shards: 3,
  rounds: 7,
  clientsPerRound: 3,
  minUpdates: 2,
  bits: 4,
  clipSigma: 2.75,
  strategy: 'fedyogi',
  aggregation: { rule: 'mean', trim: 0.2, byzantine: 1, select: 2, radius: 0.5, iterations: 2, normBound: 3.5 },
  privacy: { mode: 'distributed', epsilon: 4, delta: 1e-6, noiseMultiplier: 1.25, clipNorm: 0.75, targetQuantile: 0, population: 30 },
  mode: 'sync',
  bufferSize: 5,
  maxStaleness: 3,
  scheduling: 'uniform',
  priority: 9,
  secure: true,
  threshold: 2,
  neighbours: 4,
  hyper: { localEpochs: 3, batchSize: 16, learningRate: 0.0125, optimizer: 'adam', proximalMu: 0.01 },
  openEnrollment: true,
  roundDeadlineMs: 45_000,
  trainLimit: 600,
  testLimit: 100,
  evaluation: { every: 3, fraction: 0.5, holdout: 0.25 },
  seed: 0xffff_fffe,
};

export function roundRecord(taskId: number, round: number, fields: Partial<RoundRecord> = {}): RoundRecord {
  return {
    taskId,
    round,
    participants: 4,
    dropped: 1,
    late: 2,
    rejected: 1,
    samples: 1_234,
    staleness: 0.75,
    accuracy: 0.8125 + round / 1024,
    loss: 0.4321,
    metrics: { accuracy: 0.8125 + round / 1024, loss: 0.4321, auc: 0.875 },
    federated: { version: round - 1, clients: 3, samples: 456, metrics: { accuracy: 0.75, loss: 0.5 } },
    uploadBytes: 98_765,
    uploadBytesPerParam: 1.0625,
    rule: 'norm-bound(bulyan) → fedyogi — ✓',
    discarded: ['client-ä', 'client-b'],
    epsilon: round === 1 ? null : 0.1 * round + 1 / 3,
    clipNorm: round === 1 ? null : 2.5 / 3,
    durationMs: 12_345,
    finishedAt: `2030-01-0${round}T00:00:00.000Z`,
    ...fields,
  };
}

function participant(clientId: string, fields: Partial<ParticipantRecord> = {}): ParticipantRecord {
  return { clientId, kind: 'browser', backend: 'webgl', speed: 1_234.5, budget: 640, samples: 600, elapsedMs: 4_200, outcome: 'delivered', ...fields };
}

/** The Store contract: tasks, their status, and their rounds with participants. */
export function describeStoreConformance(name: string, open: () => Promise<StoreHarness>): void {
  describe(`${name}: Store conformance`, () => {
    let harness: StoreHarness;
    let store: Store;
    beforeEach(async () => {
      harness = await open();
      store = harness.store;
    });
    afterEach(async () => {
      vi.useRealTimers();
      await harness.close();
    });

    const named = (name: string) => withTaskDefaults({ name });

    describe('tasks', () => {
      it('creates a task as `created` with no completed rounds, keeping its spec exactly', async () => {
        const created = await store.createTask(UNUSUAL_SPEC);
        expect(created).toMatchObject({ spec: UNUSUAL_SPEC, status: 'created', completedRounds: 0 });
        expect(Number.isInteger(created.id)).toBe(true);
        expectDateString(created.createdAt);
        expect(await store.getTask(created.id)).toEqual(created);
        expect(await store.listTasks()).toEqual([created]);
      });

      it('keeps a spec made from a name alone as withTaskDefaults filled it', async () => {
        const created = await store.createTask(named('plain'));
        expect((await store.getTask(created.id))?.spec).toEqual({ ...TASK_DEFAULTS, name: 'plain' });
      });

      it('gives each task its own id and lists tasks in creation order', async () => {
        const ids: number[] = [];
        for (const n of ['first', 'second', 'third']) ids.push((await store.createTask(named(n))).id);
        expect(new Set(ids).size).toBe(3);
        expect((await store.listTasks()).map((t) => [t.id, t.spec.name])).toEqual([[ids[0], 'first'], [ids[1], 'second'], [ids[2], 'third']]);
      });

      it('lists no tasks when it holds none', async () => {
        expect(await store.listTasks()).toEqual([]);
      });

      it('answers getTask of an unknown id with undefined, and requireTask with TASK_NOT_FOUND', async () => {
        const known = await store.createTask(named('known'));
        expect(await store.getTask(known.id + 1000)).toBeUndefined();
        await expectRejectsWithCode(requireTask(store, known.id + 1000), 'TASK_NOT_FOUND');
        expect(await requireTask(store, known.id)).toEqual(known);
      });

      it('changes a task’s status to each status in turn, leaving other tasks alone', async () => {
        const task = await store.createTask(named('moving'));
        const bystander = await store.createTask(named('bystander'));
        for (const status of ['running', 'paused', 'running', 'completed', 'stopped', 'created'] satisfies TaskStatus[]) {
          await store.setTaskStatus(task.id, status);
          expect((await store.getTask(task.id))?.status).toBe(status);
        }
        expect(await store.getTask(bystander.id)).toEqual(bystander);
      });

      it('changes nothing on a status change of an unknown task', async () => {
        const task = await store.createTask(named('only'));
        await store.setTaskStatus(task.id + 1000, 'running');
        expect(await store.listTasks()).toEqual([task]);
      });
    });

    describe('rounds', () => {
      it('records a completed round exactly and advances the task to it in the same call', async () => {
        const task = await store.createTask(named('learning'));
        const record = roundRecord(task.id, 1);
        await store.completeRound(record);
        expect(await store.listRounds(task.id)).toEqual([record]);
        expect(await store.getTask(task.id)).toEqual({ ...task, completedRounds: 1 });
        await store.completeRound(roundRecord(task.id, 2));
        expect((await store.getTask(task.id))?.completedRounds).toBe(2);
      });

      it('keeps the task’s status when it records a round', async () => {
        const task = await store.createTask(named('running'));
        await store.setTaskStatus(task.id, 'running');
        await store.completeRound(roundRecord(task.id, 1));
        expect((await store.getTask(task.id))?.status).toBe('running');
      });

      it('records a round’s participants exactly, listed by client id, null budget and elapsed time kept null', async () => {
        const task = await store.createTask(named('crowd'));
        const people = [
          participant('c-2', { outcome: 'late', samples: 0, elapsedMs: null }),
          participant('a-1', { budget: null, kind: 'gpu', backend: 'webgpu' }),
          participant('b-3', { outcome: 'dropped', samples: 0, elapsedMs: null, speed: 0 }),
          participant('d-4', { outcome: 'rejected', samples: 0, elapsedMs: 17 }),
        ];
        await store.completeRound(roundRecord(task.id, 1), people);
        expect(await store.listParticipants(task.id, 1)).toEqual([people[1], people[2], people[0], people[3]]);
      });

      it('records a round with no participants when none are given', async () => {
        const task = await store.createTask(named('quiet'));
        await store.completeRound(roundRecord(task.id, 1));
        await store.completeRound(roundRecord(task.id, 2), []);
        expect(await store.listParticipants(task.id, 1)).toEqual([]);
        expect(await store.listParticipants(task.id, 2)).toEqual([]);
        expect(await store.listRounds(task.id)).toHaveLength(2);
      });

      it('lists rounds in round order, each task only its own, and participants per round', async () => {
        const a = await store.createTask(named('a'));
        const b = await store.createTask(named('b'));
        for (const round of [1, 2, 3]) {
          await store.completeRound(roundRecord(a.id, round), [participant(`a${round}`)]);
          if (round < 3) await store.completeRound(roundRecord(b.id, round, { samples: round }), [participant(`b${round}`)]);
        }
        expect((await store.listRounds(a.id)).map((r) => [r.taskId, r.round])).toEqual([[a.id, 1], [a.id, 2], [a.id, 3]]);
        expect(await store.listRounds(b.id)).toEqual([roundRecord(b.id, 1, { samples: 1 }), roundRecord(b.id, 2, { samples: 2 })]);
        expect((await store.listParticipants(a.id, 2)).map((p) => p.clientId)).toEqual(['a2']);
        expect((await store.listParticipants(b.id, 2)).map((p) => p.clientId)).toEqual(['b2']);
        expect((await store.getTask(a.id))?.completedRounds).toBe(3);
        expect((await store.getTask(b.id))?.completedRounds).toBe(2);
      });

      it('lists no rounds or participants for an unknown task or round', async () => {
        const task = await store.createTask(named('one round'));
        await store.completeRound(roundRecord(task.id, 1), [participant('x')]);
        expect(await store.listRounds(task.id + 1000)).toEqual([]);
        expect(await store.listParticipants(task.id + 1000, 1)).toEqual([]);
        expect(await store.listParticipants(task.id, 2)).toEqual([]);
      });

      it('refuses to record a round twice, keeping the first record, its participants and the task’s progress', async () => {
        const task = await store.createTask(named('twice'));
        await store.completeRound(roundRecord(task.id, 1), [participant('first')]);
        await store.completeRound(roundRecord(task.id, 2));
        await expectRejection(store.completeRound(roundRecord(task.id, 1, { samples: 1 }), [participant('second')]));
        expect(await store.listRounds(task.id)).toEqual([roundRecord(task.id, 1), roundRecord(task.id, 2)]);
        expect((await store.listParticipants(task.id, 1)).map((p) => p.clientId)).toEqual(['first']);
        expect((await store.getTask(task.id))?.completedRounds).toBe(2);
      });

      it('refuses a round that is not the task’s next with ROUND_OUT_OF_ORDER, recording nothing of it', async () => {
        const task = await store.createTask(named('in order'));
        await expectRejectsWithCode(store.completeRound(roundRecord(task.id, 2), [participant('early')]), 'ROUND_OUT_OF_ORDER');
        await store.completeRound(roundRecord(task.id, 1));
        await expectRejectsWithCode(store.completeRound(roundRecord(task.id, 1, { samples: 9 })), 'ROUND_OUT_OF_ORDER');
        expect(await store.listRounds(task.id)).toEqual([roundRecord(task.id, 1)]);
        expect(await store.listParticipants(task.id, 2)).toEqual([]);
        expect((await store.getTask(task.id))?.completedRounds).toBe(1);
      });

      it('records a round once when two writers race for it', async () => {
        const task = await store.createTask(named('race'));
        const results = await Promise.allSettled([store.completeRound(roundRecord(task.id, 1, { samples: 1 })), store.completeRound(roundRecord(task.id, 1, { samples: 2 }))]);
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        expect(await store.listRounds(task.id)).toHaveLength(1);
        expect((await store.getTask(task.id))?.completedRounds).toBe(1);
      });

      it('refuses a round of an unknown task, leaving none of its participants behind', async () => {
        const task = await store.createTask(named('real'));
        const ghost = task.id + 1000;
        await expectRejection(store.completeRound(roundRecord(ghost, 1), [participant('p')]));
        expect(await store.listRounds(ghost)).toEqual([]);
        expect(await store.listParticipants(ghost, 1)).toEqual([]);
        expect(await store.listTasks()).toEqual([task]);
      });
    });

    it('keeps tasks, statuses, rounds and participants across a reopen', async () => {
      const task = await store.createTask(UNUSUAL_SPEC);
      await store.setTaskStatus(task.id, 'running');
      await store.completeRound(roundRecord(task.id, 1), [participant('p1'), participant('p2', { budget: null })]);
      const reopened = await harness.reopen();
      expect(await reopened.getTask(task.id)).toEqual({ ...task, status: 'running', completedRounds: 1 });
      expect(await reopened.listRounds(task.id)).toEqual([roundRecord(task.id, 1)]);
      expect(await reopened.listParticipants(task.id, 1)).toEqual([participant('p1'), participant('p2', { budget: null })]);
    });

    it('closes, and closing again is harmless', async () => {
      await store.close();
      await expect(store.close()).resolves.toBeUndefined();
    });
  });
}
