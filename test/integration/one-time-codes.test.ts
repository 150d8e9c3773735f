import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentTotp } from '../../server/auth/totp.ts';
import { startHarness, type Harness } from '../support/harness.ts';

const PASSWORD = 'a long enough password';

/** Review finding 7: a one-time code is spent in one conditional store update, so racing logins cannot all win. */
describe('one-time codes under concurrent logins', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(() => h.close());

  const login = (username: string, code: string, remoteAddress: string) =>
    h.app.http.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password: PASSWORD, code }, remoteAddress });

  it('gives one session for three concurrent logins with the same TOTP code', async () => {
    const account = await h.app.accounts.createUser('totp-racer', PASSWORD, 'viewer', { actor: 'test', ip: '' });
    const code = currentTotp(account.totpSecret);
    const replies = await Promise.all(['10.7.0.1', '10.7.0.2', '10.7.0.3'].map((ip) => login('totp-racer', code, ip)));
    expect(replies.map((r) => r.statusCode).sort()).toEqual([200, 401, 401]);
    expect(replies.filter((r) => r.statusCode === 401).map((r) => r.json().code)).toEqual(['LOGIN_FAILED', 'LOGIN_FAILED']);
  });

  it('spends each recovery code once when logins race with c1, c1 and c2, and never takes a spent one again', async () => {
    const account = await h.app.accounts.createUser('recovery-racer', PASSWORD, 'viewer', { actor: 'test', ip: '' });
    const [c1, c2] = account.recoveryCodes as [string, string];
    const replies = await Promise.all([c1, c1, c2].map((code, i) => login('recovery-racer', code, `10.7.1.${i + 1}`)));
    expect(replies.map((r) => r.statusCode).sort()).toEqual([200, 200, 401]);
    expect(replies[2]!.statusCode).toBe(200); // c2 had no rival
    for (const spent of [c1, c2]) expect((await login('recovery-racer', spent, '10.7.1.9')).json().code).toBe('LOGIN_FAILED');
    const user = (await h.app.accounts.userByName('recovery-racer'))!;
    expect(user.recoveryHashes).toHaveLength(8);
  });
});
