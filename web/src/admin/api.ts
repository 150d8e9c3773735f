import { rest, type Method } from '../../../client/rest.ts';

/** The dashboard's REST calls: the session's CSRF token on changes; errors are TributaryErrors with the server's code. */

let csrfToken: string | null = null;

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

export function api<T>(method: Method, path: string, body?: unknown): Promise<T> {
  return rest<T>(method, path, { body, csrfToken });
}

/** A small helper for building DOM without a framework. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | boolean | ((e: Event) => void)> = {}, ...children: Array<Node | string | null | undefined>): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (typeof value === 'function') el.addEventListener(key.replace(/^on/, ''), value);
    else if (value === true) el.setAttribute(key, '');
    else if (value !== false) el.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) el.append(child);
  return el;
}
