import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../server/app.ts';
import { currentTotp } from '../../server/auth/totp.ts';
import { cryptoReady, generateSigningKeyPair, toBase64 } from '../../shared/crypto/sodium.ts';
import { joinRaw } from '../support/harness.ts';

const PASSWORD = 'a long enough password';

describe('accounts, sessions and enrollment', () => {
  let app: App;
  let dataDir: string;
  let url: string;
  let totpSecret: string;
  let recoveryCodes: string[];
  beforeAll(async () => {
    await cryptoReady();
    dataDir = mkdtempSync(join(tmpdir(), 'tributary-auth-'));
    app = await buildApp({ dataDir, logger: pino({ level: 'silent' }), corsOrigins: ['https://app.example'] });
    url = await app.http.listen({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await app.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const post = (path: string, payload: object, remoteAddress = '10.0.0.1', headers: Record<string, string> = {}, cookies: Record<string, string> = {}) =>
    app.http.inject({ method: 'POST', url: path, payload, remoteAddress, headers, cookies });

  it('bootstraps the first admin with the one-time setup token, and only once', async () => {
    expect((await app.http.inject({ url: '/api/auth/status' })).json()).toEqual({ setupNeeded: true });
    const token = (await app.accounts.setupTokenIfNeeded())!;
    expect((await post('/api/auth/setup', { token: 'trb_setup_wrong', username: 'root', password: PASSWORD })).json().code).toBe('SETUP_TOKEN_INVALID');
    const created = await post('/api/auth/setup', { token, username: 'root', password: PASSWORD });
    expect(created.statusCode).toBe(201);
    ({ totpSecret, recoveryCodes } = created.json());
    expect(created.json().user.role).toBe('admin');
    expect(recoveryCodes).toHaveLength(10);
    expect((await app.http.inject({ url: '/api/auth/status' })).json()).toEqual({ setupNeeded: false });
    expect((await post('/api/auth/setup', { token, username: 'again', password: PASSWORD })).json().code).toBe('SETUP_TOKEN_INVALID');
  });

  it('needs a TOTP code with the password (without one it answers as for a wrong password), takes each code once, and a recovery code once', async () => {
    expect((await post('/api/auth/login', { username: 'root', password: PASSWORD }, '10.0.1.1')).json().code).toBe('LOGIN_FAILED');
    expect((await post('/api/auth/login', { username: 'root', password: PASSWORD, code: '000000' }, '10.0.1.1')).json().code).toBe('LOGIN_FAILED');
    expect((await post('/api/auth/login', { username: 'root', password: 'wrong password!!', code: currentTotp(totpSecret) }, '10.0.1.1')).json().code).toBe('LOGIN_FAILED');
    expect((await post('/api/auth/login', { username: 'nobody', password: PASSWORD, code: currentTotp(totpSecret) }, '10.0.1.1')).json().code).toBe('LOGIN_FAILED');
    const code = currentTotp(totpSecret);
    const ok = await post('/api/auth/login', { username: 'root', password: PASSWORD, code }, '10.0.1.1');
    expect(ok.statusCode).toBe(200);
    const cookie = ok.cookies.find((c) => c.name === 'trb_session')!;
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
    // The same code a second time: refused (replay).
    expect((await post('/api/auth/login', { username: 'root', password: PASSWORD, code }, '10.0.1.1')).json().code).toBe('LOGIN_FAILED');
    const recovery = recoveryCodes[0]!;
    expect((await post('/api/auth/login', { username: 'root', password: PASSWORD, code: recovery }, '10.0.1.2')).statusCode).toBe(200);
    expect((await post('/api/auth/login', { username: 'root', password: PASSWORD, code: recovery }, '10.0.1.2')).json().code).toBe('LOGIN_FAILED');
  });

  it('throttles 20 wrong logins in a row from one address, whichever accounts they try', async () => {
    const codes: string[] = [];
    // A name per guess: the per-account limit (login-oracle.test.ts) stays out of the way.
    for (let i = 0; i < 20; i++) codes.push((await post('/api/auth/login', { username: `guess-${i}`, password: `guess number ${i}`, code: '123456' }, '10.0.2.1')).json().code);
    expect(codes.slice(0, 10).every((c) => c === 'LOGIN_FAILED')).toBe(true);
    expect(codes.slice(10).every((c) => c === 'RATE_LIMITED')).toBe(true);
    // Another address is not affected.
    expect((await post('/api/auth/login', { username: 'guess-20', password: 'guess', code: '123456' }, '10.0.2.2')).json().code).toBe('LOGIN_FAILED');
  });

  /** Logs in with a second factor; tests use root's recovery codes, since each TOTP code works once per 30 s. */
  async function login(username: string, password: string, code: string, remoteAddress: string) {
    const res = await post('/api/auth/login', { username, password, code }, remoteAddress);
    expect(res.statusCode).toBe(200);
    return { cookies: { trb_session: res.cookies.find((c) => c.name === 'trb_session')!.value }, csrf: res.json().csrfToken as string };
  }

  it('asks sessions for the CSRF token on changes, and refuses a session after logout', async () => {
    const root = await login('root', PASSWORD, recoveryCodes[1]!, '10.0.3.1');
    const create = (headers: Record<string, string>) => post('/api/tasks', { name: 'csrf' }, '10.0.3.1', headers, root.cookies);
    expect((await create({})).json().code).toBe('CSRF_INVALID');
    expect((await create({ 'x-csrf-token': 'forged' })).json().code).toBe('CSRF_INVALID');
    const sameLength = root.csrf.slice(0, -1) + (root.csrf.endsWith('A') ? 'B' : 'A');
    expect((await create({ 'x-csrf-token': sameLength })).json().code).toBe('CSRF_INVALID');
    expect((await create({ 'x-csrf-token': root.csrf })).statusCode).toBe(201);
    const me = await app.http.inject({ url: '/api/auth/me', cookies: root.cookies });
    expect(me.json().user.username).toBe('root');
    expect((await post('/api/auth/logout', {}, '10.0.3.1', { 'x-csrf-token': root.csrf }, root.cookies)).statusCode).toBe(204);
    const after = await app.http.inject({ url: '/api/auth/me', cookies: root.cookies });
    expect(after.statusCode).toBe(401);
    expect(after.json().code).toBe('UNAUTHORIZED');
  });

  it('enforces roles, and never leaves the server without an admin', async () => {
    const root = await login('root', PASSWORD, recoveryCodes[2]!, '10.0.4.1');
    const headers = { 'x-csrf-token': root.csrf };
    const made = await post('/api/users', { username: 'ops', password: PASSWORD, role: 'operator' }, '10.0.4.1', headers, root.cookies);
    expect(made.statusCode).toBe(201);
    const ops = await login('ops', PASSWORD, currentTotp(made.json().totpSecret), '10.0.4.2');
    const asOps = { 'x-csrf-token': ops.csrf };
    expect((await post('/api/tasks', { name: 'by ops' }, '10.0.4.2', asOps, ops.cookies)).statusCode).toBe(201);
    expect((await post('/api/users', { username: 'x', password: PASSWORD, role: 'admin' }, '10.0.4.2', asOps, ops.cookies)).json().code).toBe('FORBIDDEN');
    expect((await app.http.inject({ url: '/api/audit', cookies: ops.cookies })).json().code).toBe('FORBIDDEN');
    const rootId = (await app.accounts.userByName('root'))!.id;
    const demote = await app.http.inject({ method: 'PATCH', url: `/api/users/${rootId}`, payload: { role: 'viewer' }, cookies: root.cookies, headers });
    expect(demote.json().code).toBe('LAST_ADMIN');
    const opsId = made.json().user.id;
    const promoted = await app.http.inject({ method: 'PATCH', url: `/api/users/${opsId}`, payload: { role: 'viewer' }, cookies: root.cookies, headers });
    expect(promoted.json().role).toBe('viewer');
    // A role change ends the user's sessions.
    expect((await app.http.inject({ url: '/api/auth/me', cookies: ops.cookies })).statusCode).toBe(401);
  });

  it('refuses a revoked enrollment token at its next use, and the devices it enrolled at their next join', async () => {
    const root = await login('root', PASSWORD, recoveryCodes[3]!, '10.0.5.1');
    const headers = { 'x-csrf-token': root.csrf };
    const task = (await post('/api/tasks', { name: 'enroll' }, '10.0.5.1', headers, root.cookies)).json();
    const minted = await post(`/api/tasks/${task.id}/enrollment-tokens`, { kind: 'client', label: 'lab' }, '10.0.5.1', headers, root.cookies);
    const { token, record } = minted.json();
    const enroll = (identityKey: Uint8Array) => post('/api/enroll', { token, identityKey: toBase64(identityKey) }, '10.0.5.9');
    const device = await joinRaw(url, task.id, async (key) => expect((await enroll(key)).json()).toEqual({ taskId: task.id, kind: 'client' }));
    expect(device.reply.ok).toBe(true);
    device.socket.disconnect();
    const revoked = await app.http.inject({ method: 'DELETE', url: `/api/enrollment-tokens/${record.id}`, cookies: root.cookies, headers });
    expect(revoked.json().revokedAt).not.toBeNull();
    expect((await enroll(generateSigningKeyPair().publicKey)).json().code).toBe('ENROLLMENT_TOKEN_INVALID');
    const again = await joinRaw(url, task.id, async () => undefined);
    expect(again.reply).toMatchObject({ ok: false, error: { code: 'NOT_ENROLLED' } });
    again.socket.disconnect();
    // A GPU token cannot enroll a client, and a client enrollment cannot join as a GPU node.
    const gpu = (await post(`/api/tasks/${task.id}/enrollment-tokens`, { kind: 'gpu', label: 'rack' }, '10.0.5.1', headers, root.cookies)).json();
    const asGpu = await joinRaw(url, task.id, async (key) => post('/api/enroll', { token: gpu.token, identityKey: toBase64(key) }, '10.0.5.9'), { kind: 'edge' });
    expect(asGpu.reply).toMatchObject({ ok: false, error: { code: 'NOT_ENROLLED' } });
    asGpu.socket.disconnect();
  });

  it('keeps an audit trail of logins, failures, tasks, roles and tokens', async () => {
    const actions = new Set((await app.audit.list({ limit: 500 })).map((e) => e.action));
    for (const action of ['setup.refused', 'user.create', 'login', 'login.failed', 'login.recovery-code', 'logout', 'task.create', 'user.role', 'token.create', 'token.revoke', 'enroll', 'enroll.refused']) {
      expect(actions, action).toContain(action);
    }
  });

  it('sends security headers, answers only configured origins, and keeps /admin sockets for signed-in users', async () => {
    const res = await app.http.inject({ url: '/api/server-key', headers: { origin: 'https://evil.example' } });
    expect(res.headers['content-security-policy']).toContain("default-src 'self'");
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    const allowed = await app.http.inject({ url: '/api/server-key', headers: { origin: 'https://app.example' } });
    expect(allowed.headers['access-control-allow-origin']).toBe('https://app.example');

    const anonymous = io(`${url}/admin`, { transports: ['websocket'] });
    const refused = await new Promise<{ data?: { code: string } }>((resolve) => anonymous.on('connect_error', resolve));
    expect(refused.data?.code).toBe('UNAUTHORIZED');
    anonymous.close();
    const { user } = await app.accounts.createUser('watcher', PASSWORD, 'viewer', { actor: 'test', ip: '' });
    const { token } = await app.accounts.createApiToken(user, 'dashboard', '');
    const watcher = io(`${url}/admin`, { transports: ['websocket'], auth: { token } });
    await new Promise<void>((resolve, reject) => {
      watcher.on('connect', resolve);
      watcher.on('connect_error', reject);
    });
    watcher.close();
  });

  it('limits the messages one socket may send, with a coded answer past the budget', async () => {
    const socket = io(url, { transports: ['websocket'] });
    const replies = await Promise.all(Array.from({ length: 260 }, () => socket.emitWithAck('auth:challenge', {})));
    socket.disconnect();
    const limited = replies.filter((r) => !r.ok && r.error.code === 'RATE_LIMITED').length;
    expect(limited).toBeGreaterThan(0);
    expect(replies.length - limited).toBeGreaterThanOrEqual(200); // the burst passes
  });
});
