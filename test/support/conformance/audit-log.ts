import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditLog } from '../../../server/auth/model.ts';
import { expectDateString, type AuditLogHarness } from './common.ts';

/** The AuditLog contract: an append-only trail, read newest first in pages. */
export function describeAuditLogConformance(name: string, open: () => Promise<AuditLogHarness>): void {
  describe(`${name}: AuditLog conformance`, () => {
    let harness: AuditLogHarness;
    let audit: AuditLog;
    beforeEach(async () => {
      harness = await open();
      audit = harness.audit;
    });
    afterEach(async () => {
      await harness.close();
    });

    const entry = (action: string, detail: Record<string, unknown> = {}) => ({ actor: 'ada', action, target: 'task 1', detail, ip: '203.0.113.7' });

    it('lists entries newest first, each with an id, a time and its detail as recorded', async () => {
      const detail = { round: 3, accuracy: 0.8125, nested: { list: [1, 'two', null], flag: true }, none: null, text: 'ünïcode ✓' };
      await audit.record(entry('task.create'));
      await audit.record(entry('task.start', detail));
      await audit.record({ actor: 'system', action: 'round.complete', target: 'task 2', detail: {}, ip: '' });
      const listed = await audit.list({ limit: 10 });
      expect(listed.map((e) => e.action)).toEqual(['round.complete', 'task.start', 'task.create']);
      expect(listed[1]).toEqual({ ...entry('task.start', detail), id: listed[1]!.id, at: listed[1]!.at });
      expect(listed[0]).toMatchObject({ actor: 'system', target: 'task 2', ip: '' });
      for (const e of listed) expectDateString(e.at);
      const ids = listed.map((e) => e.id);
      expect(ids.every((id, i) => i === 0 || id < ids[i - 1]!)).toBe(true);
    });

    it('lists at most `limit` entries, the newest', async () => {
      for (let i = 1; i <= 5; i++) await audit.record(entry(`a${i}`));
      expect((await audit.list({ limit: 2 })).map((e) => e.action)).toEqual(['a5', 'a4']);
    });

    it('pages back with beforeId: the entries older than that id', async () => {
      for (let i = 1; i <= 5; i++) await audit.record(entry(`a${i}`));
      const first = await audit.list({ limit: 2 });
      const second = await audit.list({ limit: 2, beforeId: first.at(-1)!.id });
      const third = await audit.list({ limit: 2, beforeId: second.at(-1)!.id });
      expect([first, second, third].map((page) => page.map((e) => e.action))).toEqual([['a5', 'a4'], ['a3', 'a2'], ['a1']]);
      expect(await audit.list({ limit: 2, beforeId: third[0]!.id })).toEqual([]);
    });

    it('lists nothing when the trail is empty', async () => {
      expect(await audit.list({ limit: 10 })).toEqual([]);
    });
  });
}
