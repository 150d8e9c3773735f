import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cryptoReady, generateSigningKeyPair, toBase64 } from '../../shared/crypto/sodium.ts';
import { redactUrl } from '../../server/log-redaction.ts';
import { inviteLink, readInvite } from '../../web/src/invite.ts';
import { startHarness, type Harness } from '../support/harness.ts';

/** Enrollment tokens stay out of logs and URLs servers see, and a token minted without limits is worth little if it leaks. */

describe('enrollment tokens', () => {
  let h: Harness;
  const lines: string[] = [];
  beforeAll(async () => {
    await cryptoReady();
    h = await startHarness({ logger: pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) }) });
  });
  afterAll(() => h.close());

  const mint = (taskId: number, body: object = {}) => h.asAdmin({ method: 'POST', url: `/api/tasks/${taskId}/enrollment-tokens`, payload: { kind: 'client', label: 'lab', ...body } });
  const enroll = (token: string, identityKey: Uint8Array) => h.app.http.inject({ method: 'POST', url: '/api/enroll', payload: { token, identityKey: toBase64(identityKey) } });

  it('writes no token from a request URL into its log lines', async () => {
    const secret = 'trb_enroll_do-not-log-me';
    for (const url of [`/contribute/?task=1&token=${secret}`, `/api/no-such-route?to%6Ben=${secret}&task=1`, `/api/server-key?access_token=${secret}`]) await h.app.http.inject({ url });
    const logged = lines.join('');
    expect(logged).toContain('token=[redacted]');
    expect(logged).toContain('task=1');
    expect(logged).not.toContain(secret);
  });

  it('mints a one-use token expiring in 7 days when the request names no limits; 0 still means any number and never', async () => {
    const task = await h.createTask({ name: 'default limits' });
    const minted = await mint(task.id);
    expect(minted.statusCode).toBe(201);
    const { token, record } = minted.json();
    expect(record.maxUses).toBe(1);
    // The expiry is set a moment before the record's creation time: the same 168 hours, to the hour.
    expect(Math.round((Date.parse(record.expiresAt) - Date.parse(record.createdAt)) / 3600_000)).toBe(7 * 24);
    expect((await enroll(token, generateSigningKeyPair().publicKey)).statusCode).toBe(200);
    expect((await enroll(token, generateSigningKeyPair().publicKey)).json().code).toBe('ENROLLMENT_TOKEN_INVALID');

    const open = (await mint(task.id, { maxUses: 0, expiresInHours: 0 })).json();
    expect(open.record).toMatchObject({ maxUses: 0, expiresAt: null });
    for (let i = 0; i < 3; i++) expect((await enroll(open.token, generateSigningKeyPair().publicKey)).statusCode).toBe(200);
  });

  it('lets the device a one-use token enrolled present it again (a reloaded page) without a second use', async () => {
    const task = await h.createTask({ name: 'reload' });
    const { token, record } = (await mint(task.id)).json();
    const device = generateSigningKeyPair().publicKey;
    expect((await enroll(token, device)).json()).toEqual({ taskId: task.id, kind: 'client' });
    expect((await enroll(token, device)).json()).toEqual({ taskId: task.id, kind: 'client' });
    expect((await h.app.enrollments.listTokens(task.id)).find((t) => t.id === record.id)?.uses).toBe(1);
  });

  it('invites browsers with the token in the fragment, which no request carries, and the contribute page reads it there', () => {
    const link = new URL(inviteLink('https://fl.example', 7, 'trb_enroll_a+b/c'));
    expect(`${link.pathname}${link.search}`).toBe('/contribute/?task=7');
    expect(readInvite(link)).toEqual({ taskId: 7, token: 'trb_enroll_a+b/c' });
    expect(redactUrl('/contribute/?task=7&token=x&Token=y&tokens')).toBe('/contribute/?task=7&token=[redacted]&Token=[redacted]&tokens');
  });
});
