import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { NewAccount } from '../../server/auth/accounts.ts';
import { currentTotp } from '../../server/auth/totp.ts';
import { startHarness, type Harness } from '../support/harness.ts';

const PASSWORD = 'a long enough password';

/**
 * Review finding 11: a login's answer must not confirm the password without the second
 * factor, and guesses at one account are limited however many addresses they come from.
 */
describe('what a failed login tells', () => {
  let h: Harness;
  let address = 0;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterEach(() => vi.useRealTimers());
  afterAll(() => h.close());

  /** Every attempt from a fresh address: the per-address limit stays out of the way. */
  const login = (username: string, password: string, code?: string) =>
    h.app.http.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password, ...(code === undefined ? {} : { code }) }, remoteAddress: `10.6.${Math.floor(++address / 250)}.${address % 250}` });
  const answer = async (username: string, password: string, code?: string) => {
    const res = await login(username, password, code);
    return { status: res.statusCode, ...res.json() };
  };
  const create = (username: string): Promise<NewAccount> => h.app.accounts.createUser(username, PASSWORD, 'viewer', { actor: 'test', ip: '' });

  it('answers the right password without a code, or with a wrong one, as it answers a wrong password', async () => {
    const account = await create('oracle');
    const wrongPassword = await answer('oracle', 'not the password!', currentTotp(account.totpSecret));
    expect(wrongPassword).toMatchObject({ status: 401, code: 'LOGIN_FAILED' });
    expect(await answer('oracle', PASSWORD)).toEqual(wrongPassword);
    expect(await answer('oracle', PASSWORD, '000000')).toEqual(wrongPassword);
    expect(await answer('oracle', PASSWORD, '')).toEqual(wrongPassword);
    expect(await answer('nobody-here', PASSWORD, '000000')).toEqual(wrongPassword);
  });

  it('refuses an account after 10 failed logins from 10 addresses, even the right password and code, and no other account', async () => {
    const target = await create('target');
    const other = await create('other');
    for (let i = 0; i < 10; i++) expect((await answer('target', `guess number ${i}!`, '123456')).code).toBe('LOGIN_FAILED');
    expect(await answer('target', PASSWORD, currentTotp(target.totpSecret))).toMatchObject({ status: 429, code: 'RATE_LIMITED' });
    expect((await answer('other', PASSWORD, currentTotp(other.totpSecret))).status).toBe(200);
  });

  it('counts an unknown username alike, so the limit does not tell which names exist', async () => {
    const known = await create('known');
    const replies = async (username: string) => {
      const codes: string[] = [];
      for (let i = 0; i < 11; i++) codes.push((await answer(username, `guess number ${i}!`, '123456')).code);
      return codes;
    };
    const forKnown = await replies('known');
    expect(forKnown).toEqual([...Array<string>(10).fill('LOGIN_FAILED'), 'RATE_LIMITED']);
    expect(await replies('unknown-name')).toEqual(forKnown);
    expect(known.user.username).toBe('known');
  });

  it('takes the account again once 15 minutes have passed', async () => {
    const account = await create('patient');
    for (let i = 0; i < 10; i++) await answer('patient', `guess number ${i}!`, '123456');
    expect((await answer('patient', PASSWORD, account.recoveryCodes[0])).code).toBe('RATE_LIMITED');
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 15 * 60_000 + 1);
    expect((await login('patient', PASSWORD, account.recoveryCodes[0])).statusCode).toBe(200);
  });
});
