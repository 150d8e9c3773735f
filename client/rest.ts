import { TributaryError } from '../shared/errors.ts';

export type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

export interface RestOptions {
  /** Sent as JSON. */
  body?: unknown;
  /** An API token, sent as `authorization: Bearer …`: scripts and the CLI. */
  bearer?: string | undefined;
  /** The session's CSRF token, sent on changing requests: a page signed in by cookie. */
  csrfToken?: string | null | undefined;
}

/**
 * A call to Tributary's REST API, the same in browsers and Node (the dashboard, the CLI and
 * enrollment use it): JSON in and out, `undefined` for 204, and an error reply thrown as a
 * TributaryError carrying the server's code.
 */
export async function rest<T>(method: Method, url: string | URL, options: RestOptions = {}): Promise<T> {
  const { body, bearer, csrfToken } = options;
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  if (csrfToken && method !== 'GET') headers['x-csrf-token'] = csrfToken;
  const response = await fetch(url, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  if (response.status === 204) return undefined as T;
  if (response.ok) return (await response.json()) as T;
  // A proxy's error page has no coded body: INTERNAL, with the HTTP status for a message.
  const reply = (await response.json().catch(() => ({}))) as { code?: unknown; message?: unknown };
  const message = typeof reply.message === 'string' ? reply.message : `HTTP ${response.status}`;
  throw TributaryError.fromBody({ code: reply.code, message });
}
