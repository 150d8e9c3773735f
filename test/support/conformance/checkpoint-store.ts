import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CheckpointStore } from '../../../server/rounds/checkpoint-store.ts';
import type { Store } from '../../../server/store/store.ts';
import { withTaskDefaults } from '../../../shared/protocol/task.ts';
import { expectRejectsWithCode } from './common.ts';
import { roundRecord } from './store.ts';

export interface CheckpointStoreHarness {
  checkpoints: CheckpointStore;
  /** The tasks the checkpoints belong to. */
  tasks: Store;
  /**
   * Whether the store fences writes by token (PostgreSQL, for cluster leaders); one that
   * does not (files, one writer) takes every write, and its task store ignores fences.
   */
  fenced: boolean;
  close(): Promise<void>;
}

const bytes = (...values: number[]) => Uint8Array.from(values);
const files = (tag: number) => ({ 'model.json': new TextEncoder().encode(`{"tag":${tag}}`), 'weights.bin': bytes(tag, 0, 255, tag) });

/** What every CheckpointStore does, and what a fencing one refuses. */
export function describeCheckpointStoreConformance(name: string, open: () => Promise<CheckpointStoreHarness>): void {
  describe(`${name} (CheckpointStore conformance)`, () => {
    let h: CheckpointStoreHarness;
    let taskId: number;
    beforeEach(async () => {
      h = await open();
      taskId = (await h.tasks.createTask(withTaskDefaults({ name: 'checkpointed' }))).id;
    });
    afterEach(() => h.close());

    it('keeps each round’s files byte for byte, and has nothing for a round never written', async () => {
      expect(await h.checkpoints.has(taskId, 0)).toBe(false);
      expect(await h.checkpoints.get(taskId, 0, 'weights.bin')).toBeUndefined();
      expect(await h.checkpoints.put(taskId, 0, files(1))).toBe(true);
      expect(await h.checkpoints.put(taskId, 1, files(2))).toBe(true);
      expect(await h.checkpoints.has(taskId, 0)).toBe(true);
      expect(await h.checkpoints.get(taskId, 0, 'weights.bin')).toEqual(files(1)['weights.bin']);
      expect(await h.checkpoints.get(taskId, 1, 'model.json')).toEqual(files(2)['model.json']);
      expect(await h.checkpoints.get(taskId, 1, 'server-state.bin')).toBeUndefined();
      expect(await h.checkpoints.has(taskId, 2)).toBe(false);
    });

    it('replaces a round’s files whole: a file the new write lacks is gone', async () => {
      await h.checkpoints.put(taskId, 0, { ...files(1), extra: bytes(9) });
      await h.checkpoints.put(taskId, 0, files(3));
      expect(await h.checkpoints.get(taskId, 0, 'weights.bin')).toEqual(files(3)['weights.bin']);
      expect(await h.checkpoints.get(taskId, 0, 'extra')).toBeUndefined();
    });

    it('keeps a task’s own files apart from its rounds’', async () => {
      expect(await h.checkpoints.getTaskFile(taskId, 'initial-weights.bin')).toBeUndefined();
      await h.checkpoints.putTaskFile(taskId, 'initial-weights.bin', bytes(1, 2, 3));
      await h.checkpoints.putTaskFile(taskId, 'initial-weights.bin', bytes(4, 5));
      expect(await h.checkpoints.getTaskFile(taskId, 'initial-weights.bin')).toEqual(bytes(4, 5));
      expect(await h.checkpoints.has(taskId, 0)).toBe(false);
    });

    it('fences leaders where it fences: a lower token neither overwrites a round nor records over a newer leader’s checkpoint', async () => {
      expect(await h.checkpoints.put(taskId, 1, files(5), 5)).toBe(true);
      expect(await h.checkpoints.put(taskId, 1, files(6), 6)).toBe(true); // a newer leader writes over the deposed one's
      const late = await h.checkpoints.put(taskId, 1, files(4), 5); // the deposed leader again
      if (!h.fenced) {
        expect(late).toBe(true);
        return;
      }
      expect(late).toBe(false);
      expect(await h.checkpoints.get(taskId, 1, 'weights.bin')).toEqual(files(6)['weights.bin']);
      // Its record does not land on the newer leader's checkpoint; the newer leader's does.
      await expectRejectsWithCode(h.tasks.completeRound(roundRecord(taskId, 1), [], 5), 'ROUND_OUT_OF_ORDER');
      expect((await h.tasks.getTask(taskId))!.completedRounds).toBe(0);
      await h.tasks.completeRound(roundRecord(taskId, 1), [], 6);
      // A recorded round's checkpoint is final, even to a higher token.
      expect(await h.checkpoints.put(taskId, 1, files(7), 7)).toBe(false);
      expect(await h.checkpoints.get(taskId, 1, 'weights.bin')).toEqual(files(6)['weights.bin']);
    });
  });
}
