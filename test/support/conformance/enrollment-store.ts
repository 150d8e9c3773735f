import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { EnrollmentStore, EnrollmentToken } from '../../../server/auth/model.ts';
import { withTaskDefaults } from '../../../shared/protocol/task.ts';
import { expectDateString, useFakeDate, type EnrollmentStoreHarness } from './common.ts';

const newToken = (taskId: number, tokenHash: string, fields: Partial<Omit<EnrollmentToken, 'id' | 'createdAt' | 'revokedAt' | 'uses'>> = {}) => ({
  taskId,
  kind: 'client' as const,
  label: `label ${tokenHash}`,
  tokenHash,
  createdBy: 'ada',
  expiresAt: null,
  maxUses: 0,
  ...fields,
});

/** The EnrollmentStore contract: enrollment tokens and the identity keys bound with them. */
export function describeEnrollmentStoreConformance(name: string, open: () => Promise<EnrollmentStoreHarness>): void {
  describe(`${name}: EnrollmentStore conformance`, () => {
    let harness: EnrollmentStoreHarness;
    let enrollments: EnrollmentStore;
    let taskA: number;
    let taskB: number;
    beforeEach(async () => {
      harness = await open();
      enrollments = harness.enrollments;
      taskA = (await harness.tasks.createTask(withTaskDefaults({ name: 'a' }))).id;
      taskB = (await harness.tasks.createTask(withTaskDefaults({ name: 'b' }))).id;
    });
    afterEach(async () => {
      vi.useRealTimers();
      await harness.close();
    });

    const uses = async (id: number) => (await enrollments.tokenById(id))!.uses;

    describe('tokens', () => {
      it('creates a token unused and unrevoked, keeping every field as given', async () => {
        const fields = newToken(taskA, 'h-1', { kind: 'gpu', label: 'lab GPUs', expiresAt: '2031-01-01T00:00:00.000Z', maxUses: 3 });
        const token = await enrollments.createToken(fields);
        expect(token).toMatchObject({ ...fields, uses: 0, revokedAt: null });
        expect(Number.isInteger(token.id)).toBe(true);
        expectDateString(token.createdAt);
        expect(await enrollments.tokenById(token.id)).toEqual(token);
        expect(await enrollments.tokenByHash('h-1')).toEqual(token);
      });

      it('answers an unknown token id or hash with undefined', async () => {
        const token = await enrollments.createToken(newToken(taskA, 'h-1'));
        expect(await enrollments.tokenById(token.id + 1000)).toBeUndefined();
        expect(await enrollments.tokenByHash('h-2')).toBeUndefined();
      });

      it('lists a task’s tokens in creation order, and no other task’s', async () => {
        const one = await enrollments.createToken(newToken(taskA, 'h-1'));
        const other = await enrollments.createToken(newToken(taskB, 'h-2'));
        const two = await enrollments.createToken(newToken(taskA, 'h-3'));
        expect(await enrollments.listTokens(taskA)).toEqual([one, two]);
        expect(await enrollments.listTokens(taskB)).toEqual([other]);
        expect(await enrollments.listTokens(taskA + taskB + 1000)).toEqual([]);
      });
    });

    describe('enrollments', () => {
      it('binds a key to a task with a token, counting one use of it', async () => {
        const token = await enrollments.createToken(newToken(taskA, 'h-1', { kind: 'gpu' }));
        const made = await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'gpu', tokenId: token.id });
        expect(made).toMatchObject({ taskId: taskA, identityKey: 'k1', kind: 'gpu', tokenId: token.id, revokedAt: null });
        expectDateString(made.createdAt);
        expect(await enrollments.enrollment(taskA, 'k1')).toEqual(made);
        expect(await uses(token.id)).toBe(1);
        await enrollments.enroll({ taskId: taskA, identityKey: 'k2', kind: 'gpu', tokenId: token.id });
        expect(await uses(token.id)).toBe(2);
      });

      it('refuses, counting nothing, an enrollment on a token that is used up, revoked or expired', async () => {
        const single = await enrollments.createToken(newToken(taskA, 'h-1', { maxUses: 1 }));
        await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: single.id });
        await expect(enrollments.enroll({ taskId: taskA, identityKey: 'k2', kind: 'client', tokenId: single.id })).rejects.toMatchObject({ code: 'ENROLLMENT_TOKEN_INVALID' });
        expect(await uses(single.id)).toBe(1);
        const revoked = await enrollments.createToken(newToken(taskA, 'h-2'));
        await enrollments.revokeToken(revoked.id);
        await expect(enrollments.enroll({ taskId: taskA, identityKey: 'k3', kind: 'client', tokenId: revoked.id })).rejects.toMatchObject({ code: 'ENROLLMENT_TOKEN_INVALID' });
        const expired = await enrollments.createToken(newToken(taskA, 'h-3', { expiresAt: '2001-01-01T00:00:00.000Z' }));
        await expect(enrollments.enroll({ taskId: taskA, identityKey: 'k4', kind: 'client', tokenId: expired.id })).rejects.toMatchObject({ code: 'ENROLLMENT_TOKEN_INVALID' });
        expect(await enrollments.enrollment(taskA, 'k2')).toBeUndefined();
        expect(await enrollments.enrollment(taskA, 'k3')).toBeUndefined();
        expect(await enrollments.enrollment(taskA, 'k4')).toBeUndefined();
      });

      it('binds a key with no token (open enrollment), counting no token’s use', async () => {
        const token = await enrollments.createToken(newToken(taskA, 'h-1'));
        const made = await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: null });
        expect(made).toMatchObject({ tokenId: null, revokedAt: null });
        expect(await uses(token.id)).toBe(0);
      });

      it('returns the existing binding for a key bound already, counting no second use', async () => {
        const first = await enrollments.createToken(newToken(taskA, 'h-1'));
        const second = await enrollments.createToken(newToken(taskA, 'h-2'));
        const made = await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: first.id });
        expect(await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: second.id })).toEqual(made);
        expect(await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: first.id })).toEqual(made);
        expect(await uses(first.id)).toBe(1);
        expect(await uses(second.id)).toBe(0);
        expect(await enrollments.listEnrollments(taskA)).toEqual([made]);
      });

      it('keeps one key’s bindings to different tasks apart', async () => {
        const inA = await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: null });
        expect(await enrollments.enrollment(taskB, 'k1')).toBeUndefined();
        const inB = await enrollments.enroll({ taskId: taskB, identityKey: 'k1', kind: 'gpu', tokenId: null });
        expect(inB).toMatchObject({ taskId: taskB, kind: 'gpu' });
        expect(await enrollments.enrollment(taskA, 'k1')).toEqual(inA);
        expect(await enrollments.revokeEnrollment(taskA, 'k1')).toBe(true);
        expect(await enrollments.enrollment(taskB, 'k1')).toEqual(inB);
      });

      it('answers an unknown binding with undefined and lists none for a task without any', async () => {
        await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: null });
        expect(await enrollments.enrollment(taskA, 'k2')).toBeUndefined();
        expect(await enrollments.listEnrollments(taskB)).toEqual([]);
      });

      it('lists a task’s bindings, revoked ones included', async () => {
        const token = await enrollments.createToken(newToken(taskA, 'h-1'));
        await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: token.id });
        await enrollments.enroll({ taskId: taskA, identityKey: 'k2', kind: 'client', tokenId: null });
        await enrollments.enroll({ taskId: taskB, identityKey: 'k3', kind: 'client', tokenId: null });
        await enrollments.revokeEnrollment(taskA, 'k2');
        const listed = (await enrollments.listEnrollments(taskA)).sort((x, y) => x.identityKey.localeCompare(y.identityKey));
        expect(listed.map((e) => [e.identityKey, e.revokedAt === null])).toEqual([['k1', true], ['k2', false]]);
      });

      it('revokes a binding once: true, then false; false for a key never bound', async () => {
        await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: null });
        expect(await enrollments.revokeEnrollment(taskA, 'k1')).toBe(true);
        expectDateString((await enrollments.enrollment(taskA, 'k1'))?.revokedAt);
        expect(await enrollments.revokeEnrollment(taskA, 'k1')).toBe(false);
        expect(await enrollments.revokeEnrollment(taskA, 'k9')).toBe(false);
      });

      it('refuses to bind a revoked key again, with a token or without, counting no use', async () => {
        const first = await enrollments.createToken(newToken(taskA, 'h-1'));
        const second = await enrollments.createToken(newToken(taskA, 'h-2', { kind: 'gpu' }));
        const made = await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: first.id });
        await enrollments.revokeEnrollment(taskA, 'k1');
        const revoked = await enrollments.enrollment(taskA, 'k1');
        await expect(enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'gpu', tokenId: second.id })).rejects.toMatchObject({ code: 'NOT_ENROLLED' });
        await expect(enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: null })).rejects.toMatchObject({ code: 'NOT_ENROLLED' });
        expect(await enrollments.enrollment(taskA, 'k1')).toEqual(revoked);
        expect(revoked).toMatchObject({ ...made, revokedAt: expect.any(String) });
        expect(await uses(first.id)).toBe(1);
        expect(await uses(second.id)).toBe(0);
      });

      it('restores a revoked binding as it was: true, then false; false for a key never bound or not revoked', async () => {
        const made = await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'gpu', tokenId: null });
        await enrollments.enroll({ taskId: taskA, identityKey: 'k2', kind: 'client', tokenId: null });
        await enrollments.revokeEnrollment(taskA, 'k1');
        expect(await enrollments.restoreEnrollment(taskB, 'k1')).toBe(false);
        expect(await enrollments.restoreEnrollment(taskA, 'k1')).toBe(true);
        expect(await enrollments.enrollment(taskA, 'k1')).toEqual(made);
        expect(await enrollments.restoreEnrollment(taskA, 'k1')).toBe(false);
        expect(await enrollments.restoreEnrollment(taskA, 'k2')).toBe(false);
        expect(await enrollments.restoreEnrollment(taskA, 'k9')).toBe(false);
      });
    });

    it('revokes a token and every binding made with it, and nothing else, naming the keys it revoked', async () => {
      const doomed = await enrollments.createToken(newToken(taskA, 'h-1'));
      const kept = await enrollments.createToken(newToken(taskA, 'h-2'));
      await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: doomed.id });
      await enrollments.enroll({ taskId: taskA, identityKey: 'k2', kind: 'client', tokenId: doomed.id });
      const viaKept = await enrollments.enroll({ taskId: taskA, identityKey: 'k3', kind: 'client', tokenId: kept.id });
      const open = await enrollments.enroll({ taskId: taskA, identityKey: 'k4', kind: 'client', tokenId: null });
      expect((await enrollments.revokeToken(doomed.id)).sort()).toEqual(['k1', 'k2']);
      expect(await enrollments.revokeToken(doomed.id)).toEqual([]);
      expectDateString((await enrollments.tokenById(doomed.id))?.revokedAt);
      expectDateString((await enrollments.enrollment(taskA, 'k1'))?.revokedAt);
      expectDateString((await enrollments.enrollment(taskA, 'k2'))?.revokedAt);
      expect(await enrollments.tokenById(kept.id)).toEqual({ ...kept, uses: 1 });
      expect(await enrollments.enrollment(taskA, 'k3')).toEqual(viaKept);
      expect(await enrollments.enrollment(taskA, 'k4')).toEqual(open);
    });

    it('keeps the first revocation times when a token is revoked again', async () => {
      const token = await enrollments.createToken(newToken(taskA, 'h-1'));
      await enrollments.enroll({ taskId: taskA, identityKey: 'k1', kind: 'client', tokenId: token.id });
      useFakeDate(Date.UTC(2031, 0, 1));
      await enrollments.revokeToken(token.id);
      const before = [(await enrollments.tokenById(token.id))?.revokedAt, (await enrollments.enrollment(taskA, 'k1'))?.revokedAt];
      vi.setSystemTime(Date.UTC(2031, 5, 1));
      await enrollments.revokeToken(token.id);
      expect([(await enrollments.tokenById(token.id))?.revokedAt, (await enrollments.enrollment(taskA, 'k1'))?.revokedAt]).toEqual(before);
    });
  });
}
