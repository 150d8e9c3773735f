import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cryptoReady, toBase64 } from '../../shared/crypto/sodium.ts';
import type { ErrorBody } from '../../shared/errors.ts';
import type { RoundStart } from '../../shared/protocol/events.ts';
import { handDrivenClient, joinRaw, sealedUpdate, startHarness, type Harness, type RawSocket } from '../support/harness.ts';

/** Revocation takes effect at once, on live sessions too, and lasts until an operator restores the key. */

const hex = (key: Uint8Array) => Buffer.from(key).toString('hex');

/** What the server tells a socket before it drops it, and why the socket closed. */
function dropOf(socket: RawSocket): Promise<{ told: ErrorBody; reason: string }> {
  return new Promise((resolve) => socket.once('server:error', (told) => socket.once('disconnect', (reason) => resolve({ told, reason }))));
}

describe('revoking a device', () => {
  let h: Harness;
  beforeAll(async () => {
    await cryptoReady();
    // A grace period far longer than the test: a session that merely waited it out would still be listed.
    h = await startHarness({ sessionGraceMs: 600_000 });
  });
  afterAll(() => h.close());

  const joinedIds = async (taskId: number) => ((await h.asAdmin({ url: `/api/tasks/${taskId}/clients` })).json() as Array<{ id: string }>).map((c) => c.id);
  const mint = async (taskId: number) => (await h.app.enrollments.createToken(taskId, { kind: 'client', label: 'lab', maxUses: 0, expiresInHours: 0 }, { actor: 'test', ip: '' })).token;

  it('drops a revoked device in a round at once: told NOT_ENROLLED, out of the round, refused at its next join', async () => {
    const task = await h.createTask({ name: 'revoke mid-round', shards: 2, clientsPerRound: 2, minUpdates: 1, rounds: 1, trainLimit: 1_200, testLimit: 500, scheduling: 'uniform' });
    const revoked = await joinRaw(h.url, task.id, (key) => h.enroll(task.id, key), { shard: 0 });
    expect(revoked.reply.ok).toBe(true);
    const starts: RoundStart[] = [];
    revoked.socket.on('round:start', (start) => starts.push(start));
    expect((await revoked.socket.emitWithAck('client:ready', { taskId: task.id, samples: 600, backend: 'cpu', cachedVersion: -1 })).ok).toBe(true);
    const kept = await handDrivenClient(h, task.id, { shard: 1, samples: 600 });
    await h.app.coordinator.start(task.id);
    const start = await kept.nextRoundStart();
    // Both were selected; the two configs travel on two sockets, so either may arrive first.
    await h.waitFor(async () => starts.length === 1, 30_000);
    expect(starts).toHaveLength(1);

    const dropped = dropOf(revoked.socket);
    const res = await h.asAdmin({ method: 'DELETE', url: `/api/tasks/${task.id}/enrollments/${hex(revoked.identity.publicKey)}` });
    expect(res.statusCode).toBe(204);
    const clientId = revoked.reply.ok ? revoked.reply.value.clientId : '';
    expect(await joinedIds(task.id)).not.toContain(clientId);
    expect(await dropped).toMatchObject({ told: { code: 'NOT_ENROLLED' }, reason: 'io server disconnect' });

    // The round does not wait for it: the other participant's update closes it.
    expect((await kept.upload(start, sealedUpdate(start, 1e-3))).ok).toBe(true);
    await h.waitForStatus(task.id, 'completed');
    expect((await h.app.store.listRounds(task.id))[0]).toMatchObject({ participants: 1, dropped: 1, samples: 600 });
    kept.socket.disconnect();

    const again = await joinRaw(h.url, task.id, async () => undefined);
    expect(again.reply).toMatchObject({ ok: false, error: { code: 'NOT_ENROLLED' } });
    again.socket.disconnect();
  });

  it('ends the sessions of every device a revoked token enrolled, away ones included, and no others', async () => {
    const task = await h.createTask({ name: 'revoke token' });
    const doomed = await mint(task.id);
    const enrollWith = (token: string) => (key: Uint8Array) => h.app.enrollments.enrollWithToken(token, key, '127.0.0.1');
    const [live, away, other] = await Promise.all([joinRaw(h.url, task.id, enrollWith(doomed)), joinRaw(h.url, task.id, enrollWith(doomed)), joinRaw(h.url, task.id, enrollWith(await mint(task.id)))]);
    const ids = [live, away, other].map((d) => (d.reply.ok ? d.reply.value.clientId : ''));
    const awayGone = new Promise((resolve) => away.socket.once('disconnect', resolve));
    away.socket.disconnect();
    await awayGone;
    await h.waitFor(async () => (await h.asAdmin({ url: `/api/tasks/${task.id}/clients` })).json().some((c: { id: string; state: string }) => c.id === ids[1] && c.state === 'away'));

    const dropped = dropOf(live.socket);
    const tokenId = (await h.app.enrollments.listTokens(task.id))[1]!.id;
    expect((await h.asAdmin({ method: 'DELETE', url: `/api/enrollment-tokens/${tokenId}` })).statusCode).toBe(200);
    expect(await joinedIds(task.id)).toEqual([ids[2]]);
    expect(await dropped).toMatchObject({ told: { code: 'NOT_ENROLLED' } });
    expect(other.socket.connected).toBe(true);
    other.socket.disconnect();
  });

  it('keeps a revoked key out until an operator restores it: neither its token nor open enrollment binds it again', async () => {
    const task = await h.createTask({ name: 'restore', openEnrollment: true });
    const token = await mint(task.id);
    const device = await joinRaw(h.url, task.id, (key) => h.app.enrollments.enrollWithToken(token, key, '127.0.0.1'));
    device.socket.disconnect();
    const key = device.identity.publicKey;
    expect((await h.asAdmin({ method: 'DELETE', url: `/api/tasks/${task.id}/enrollments/${hex(key)}` })).statusCode).toBe(204);

    const withToken = await h.app.http.inject({ method: 'POST', url: '/api/enroll', payload: { token, identityKey: toBase64(key) } });
    expect(withToken.json()).toMatchObject({ code: 'NOT_ENROLLED', message: expect.stringContaining('operator') });
    const open = await h.app.http.inject({ method: 'POST', url: `/api/tasks/${task.id}/enroll`, payload: { identityKey: toBase64(key) } });
    expect(open.json()).toMatchObject({ code: 'NOT_ENROLLED' });
    expect((await h.app.enrollments.listEnrollments(task.id))[0]?.revokedAt).not.toBeNull();

    const restored = await h.asAdmin({ method: 'POST', url: `/api/tasks/${task.id}/enrollments/${hex(key)}/restore` });
    expect(restored.statusCode).toBe(204);
    expect((await h.asAdmin({ method: 'POST', url: `/api/tasks/${task.id}/enrollments/${hex(key)}/restore` })).json().code).toBe('NOT_ENROLLED');
    await expect(h.app.enrollments.check(task.id, key, 'edge')).resolves.toBeUndefined();
    // Restored, the device's token is accepted again (it names the binding it has, counting no use).
    expect((await h.app.http.inject({ method: 'POST', url: '/api/enroll', payload: { token, identityKey: toBase64(key) } })).statusCode).toBe(200);
    const audit = await h.app.audit.list({ limit: 50 });
    expect(audit.map((e) => e.action)).toContain('enrollment.restore');
    expect(audit.filter((e) => e.action === 'enroll.refused').length).toBeGreaterThanOrEqual(2);
  });
});
