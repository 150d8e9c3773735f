import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../server/app.ts';
import { startHarness, type Harness } from '../support/harness.ts';

const PASSWORD = 'a long enough password';
const PROXY = '10.5.0.1';

/**
 * Review finding 12: behind a TLS proxy the session cookie is Secure, and every client
 * has its own address (rate limits, audit) — taken from X-Forwarded-* only when the
 * proxy that set them is trusted.
 */
describe('behind a reverse proxy', () => {
  let proxied: Harness;
  let direct: Harness;
  beforeAll(async () => {
    proxied = await startHarness({ trustProxy: [PROXY] });
    direct = await startHarness();
  });
  afterAll(async () => {
    await proxied.close();
    await direct.close();
  });

  let attempt = 0;
  /** A failed login (each under a new name, so only the per-address limit counts) through `from`, saying it forwards for `client`. */
  const failedLogin = (app: App, from: string, headers: Record<string, string>) =>
    app.http.inject({ method: 'POST', url: '/api/auth/login', payload: { username: `guess-${++attempt}`, password: 'wrong password!!', code: '123456' }, remoteAddress: from, headers });

  /** Whether a successful login through `from` with these headers gets a Secure cookie. */
  const secureCookie = async (app: App, username: string, code: string, from: string, headers: Record<string, string>) => {
    const res = await app.http.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password: PASSWORD, code }, remoteAddress: from, headers });
    expect(res.statusCode).toBe(200);
    return res.cookies.find((c) => c.name === 'trb_session')!.secure === true;
  };
  const HTTPS = { 'x-forwarded-proto': 'https', 'x-forwarded-for': '198.51.100.7' };

  it('marks the session cookie Secure when a trusted proxy says the client came over HTTPS, and only then', async () => {
    const codes = (await proxied.app.accounts.createUser('bob', PASSWORD, 'viewer', { actor: 'test', ip: '' })).recoveryCodes;
    expect(await secureCookie(proxied.app, 'bob', codes[0]!, PROXY, HTTPS)).toBe(true);
    expect(await secureCookie(proxied.app, 'bob', codes[1]!, '203.0.113.50', HTTPS)).toBe(false); // anyone can send the headers
  });

  it('gives each client behind the proxy its own rate-limit bucket and audit address', async () => {
    const codes: string[] = [];
    for (let i = 0; i < 11; i++) codes.push((await failedLogin(proxied.app, PROXY, { 'x-forwarded-for': '203.0.113.1' })).json().code);
    expect(codes.at(-1)).toBe('RATE_LIMITED');
    expect((await failedLogin(proxied.app, PROXY, { 'x-forwarded-for': '203.0.113.2' })).json().code).toBe('LOGIN_FAILED');
    const audited = (await proxied.app.audit.list({ limit: 1 }))[0]!;
    expect(audited).toMatchObject({ action: 'login.failed', ip: '203.0.113.2' });
  });

  it('ignores X-Forwarded-For from an address it does not trust: a client cannot pick its own bucket', async () => {
    const codes: string[] = [];
    for (let i = 0; i < 11; i++) codes.push((await failedLogin(proxied.app, '203.0.113.9', { 'x-forwarded-for': `198.51.100.${i}` })).json().code);
    expect(codes.at(-1)).toBe('RATE_LIMITED');
    expect((await proxied.app.audit.list({ limit: 1 }))[0]!.ip).toBe('203.0.113.9');
  });

  it('trusts no proxy unless told to', async () => {
    const code = (await direct.app.accounts.createUser('carol', PASSWORD, 'viewer', { actor: 'test', ip: '' })).recoveryCodes[0]!;
    expect(await secureCookie(direct.app, 'carol', code, PROXY, HTTPS)).toBe(false);
    expect((await direct.app.audit.list({ limit: 1 }))[0]).toMatchObject({ action: 'login', ip: PROXY });
  });
});
