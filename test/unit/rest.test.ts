import { afterEach, describe, expect, it, vi } from 'vitest';
import { rest } from '../../client/rest.ts';
import { TributaryError } from '../../shared/errors.ts';

/** Stands in for the server: answers every call with `response` and keeps what was sent. */
function serve(response: () => Response): Array<{ url: string; init: RequestInit }> {
  const calls: Array<{ url: string; init: RequestInit }> = [];
  vi.stubGlobal('fetch', async (url: string | URL, init: RequestInit) => {
    calls.push({ url: String(url), init });
    return response();
  });
  return calls;
}

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

describe('rest', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('sends JSON with a bearer token and returns the JSON reply', async () => {
    const calls = serve(() => json({ id: 3 }));
    expect(await rest('POST', 'http://server/api/tasks', { body: { name: 'a' }, bearer: 'trb_api_x' })).toEqual({ id: 3 });
    expect(calls[0]!.init).toMatchObject({ method: 'POST', body: '{"name":"a"}', headers: { 'content-type': 'application/json', authorization: 'Bearer trb_api_x' } });
  });

  it('sends the CSRF token on changing requests only', async () => {
    const calls = serve(() => json({}));
    await rest('GET', '/api/auth/me', { csrfToken: 'c' });
    await rest('DELETE', '/api/users/2', { csrfToken: 'c' });
    expect(calls.map((c) => c.init.headers)).toEqual([{}, { 'x-csrf-token': 'c' }]);
  });

  it('returns undefined for 204', async () => {
    serve(() => new Response(null, { status: 204 }));
    expect(await rest('DELETE', '/api/tokens/1')).toBeUndefined();
  });

  it('throws a coded error reply as a TributaryError with its code', async () => {
    serve(() => json({ code: 'RATE_LIMITED', message: 'slow down' }, 429));
    const error = await rest('POST', '/api/auth/login', { body: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TributaryError);
    expect(error).toMatchObject({ code: 'RATE_LIMITED', status: 429, message: 'slow down' });
  });

  it('throws a reply without a coded body as INTERNAL, naming the HTTP status', async () => {
    serve(() => new Response('<html>Bad gateway</html>', { status: 502 }));
    await expect(rest('GET', '/api/tasks')).rejects.toMatchObject({ code: 'INTERNAL', message: 'HTTP 502' });
  });
});
