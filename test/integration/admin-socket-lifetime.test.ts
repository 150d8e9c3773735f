import { io, type Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Role } from '../../server/auth/model.ts';
import { startHarness, type Harness } from '../support/harness.ts';

const PASSWORD = 'a long enough password';
const EMBEDDER = 'https://app.example';

/**
 * Review finding 8: an /admin socket lives no longer than the credential it connected
 * with, and a browser page of another origin cannot ride a session cookie into one.
 */
describe('/admin sockets and their credentials', () => {
  let h: Harness;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    h = await startHarness({ corsOrigins: [EMBEDDER] });
  });
  afterEach(() => {
    vi.useRealTimers();
    for (const s of sockets.splice(0)) s.close();
  });
  afterAll(() => h.close());

  let users = 0;
  /** A new user signed in with a recovery code: its session cookie and CSRF token, and an API token. */
  async function signIn(role: Role = 'viewer') {
    const username = `watcher-${++users}`;
    const account = await h.app.accounts.createUser(username, PASSWORD, role, { actor: 'test', ip: '' });
    const res = await h.app.http.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password: PASSWORD, code: account.recoveryCodes[0] }, remoteAddress: `10.8.0.${users}` });
    expect(res.statusCode).toBe(200);
    const cookies = { trb_session: res.cookies.find((c) => c.name === 'trb_session')!.value };
    const api = await h.app.accounts.createApiToken(account.user, 'watch', '');
    return { user: account.user, cookies, csrf: res.json().csrfToken as string, token: api.token, tokenId: api.id };
  }

  function connect(options: { cookie?: string; origin?: string; token?: string }): Socket {
    const extraHeaders: Record<string, string> = {};
    if (options.cookie) extraHeaders.cookie = `trb_session=${options.cookie}`;
    if (options.origin) extraHeaders.origin = options.origin;
    const socket = io(`${h.url}/admin`, { transports: ['websocket'], reconnection: false, extraHeaders, ...(options.token ? { auth: { token: options.token } } : {}) });
    sockets.push(socket);
    return socket;
  }

  /** Resolves once connected, or with the refusal's code. */
  const outcome = (socket: Socket) =>
    new Promise<string>((resolve) => {
      socket.once('connect', () => resolve('connected'));
      socket.once('connect_error', (error: Error & { data?: { code?: string } }) => resolve(error.data?.code ?? error.message));
    });

  const disconnected = (socket: Socket) => new Promise<string>((resolve) => socket.once('disconnect', (reason) => resolve(reason)));

  it('takes a session cookie only from the server’s own origin and the configured ones', async () => {
    const { cookies } = await signIn();
    expect(await outcome(connect({ cookie: cookies.trb_session, origin: h.url }))).toBe('connected');
    expect(await outcome(connect({ cookie: cookies.trb_session, origin: EMBEDDER }))).toBe('connected');
    expect(await outcome(connect({ cookie: cookies.trb_session, origin: 'https://evil.example' }))).toBe('FORBIDDEN');
    expect(await outcome(connect({ cookie: cookies.trb_session, origin: h.url.replace('127.0.0.1', 'localhost') }))).toBe('FORBIDDEN');
    // A browser always sends its Origin on a WebSocket handshake: a cookie without one is no page of ours.
    expect(await outcome(connect({ cookie: cookies.trb_session }))).toBe('FORBIDDEN');
  });

  it('takes an API token from anywhere: tools send no Origin, and a token is never ambient', async () => {
    const { token } = await signIn();
    expect(await outcome(connect({ token }))).toBe('connected');
    expect(await outcome(connect({ token, origin: 'https://evil.example' }))).toBe('connected');
  });

  it('disconnects the socket when its session logs out, leaving the user’s other sockets', async () => {
    const me = await signIn();
    const bySession = connect({ cookie: me.cookies.trb_session, origin: h.url });
    const byToken = connect({ token: me.token });
    expect([await outcome(bySession), await outcome(byToken)]).toEqual(['connected', 'connected']);
    const gone = disconnected(bySession);
    const logout = await h.app.http.inject({ method: 'POST', url: '/api/auth/logout', cookies: me.cookies, headers: { 'x-csrf-token': me.csrf } });
    expect(logout.statusCode).toBe(204);
    expect(await gone).toBe('io server disconnect');
    expect(byToken.connected).toBe(true);
  });

  it('disconnects the socket when its API token is revoked', async () => {
    const me = await signIn();
    const socket = connect({ token: me.token });
    expect(await outcome(socket)).toBe('connected');
    const gone = disconnected(socket);
    const revoked = await h.app.http.inject({ method: 'DELETE', url: `/api/api-tokens/${me.tokenId}`, cookies: me.cookies, headers: { 'x-csrf-token': me.csrf } });
    expect(revoked.statusCode).toBe(204);
    expect(await gone).toBe('io server disconnect');
  });

  it.each([
    ['changes role', { role: 'operator' }],
    ['is disabled', { disabled: true }],
  ])('disconnects every socket of a user who %s, and no one else’s', async (_label, patch) => {
    const target = await signIn();
    const bystander = await signIn();
    const mine = [connect({ cookie: target.cookies.trb_session, origin: h.url }), connect({ token: target.token })];
    const theirs = connect({ token: bystander.token });
    for (const s of [...mine, theirs]) expect(await outcome(s)).toBe('connected');
    const gone = mine.map(disconnected);
    const res = await h.asAdmin({ method: 'PATCH', url: `/api/users/${target.user.id}`, payload: patch });
    expect(res.statusCode).toBe(200);
    expect(await Promise.all(gone)).toEqual(['io server disconnect', 'io server disconnect']);
    expect(theirs.connected).toBe(true);
  });

  it('disconnects the socket when its session expires', async () => {
    const me = await signIn();
    const socket = connect({ cookie: me.cookies.trb_session, origin: h.url });
    expect(await outcome(socket)).toBe('connected');
    const gone = disconnected(socket);
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 13 * 3600_000); // past the 12-h lifetime
    await h.app.accounts.endExpiredSessions();
    expect(await gone).toBe('io server disconnect');
  });
});
