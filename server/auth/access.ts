import type { FastifyInstance, FastifyRequest } from 'fastify';
import { equalBytes, utf8 } from '../../shared/crypto/sodium.ts';
import { TributaryError } from '../../shared/errors.ts';
import type { Accounts, Principal } from './accounts.ts';
import { ROLE_RANK, type Role } from './model.ts';

/** Who may call a route: anyone, or a signed-in user of at least this role. */
export type Access = 'public' | Role;

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
  interface FastifyRequest {
    principal?: Principal;
  }
}

export const SESSION_COOKIE = 'trb_session';
export const CSRF_HEADER = 'x-csrf-token';

/** One row of the route table: what the authorization test walks. */
export interface RouteRule {
  method: string;
  url: string;
  access: Access | undefined;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The principal behind a cookie header or a bearer token, if any. */
export async function authenticate(accounts: Accounts, credentials: { sessionId?: string; bearer?: string }): Promise<Principal | undefined> {
  if (credentials.bearer) return accounts.fromApiToken(credentials.bearer);
  if (credentials.sessionId) return accounts.fromSession(credentials.sessionId);
  return undefined;
}

/** In constant time, so response times do not reveal the token byte by byte (a header sent twice never matches). */
function csrfMatches(header: string | string[] | undefined, expected: string): boolean {
  return typeof header === 'string' && equalBytes(utf8(header), utf8(expected));
}

function bearerOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  return header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
}

/**
 * Authorization for every route, decided by the route's own `config.access`. A route
 * registered without a rule fails the app at startup (and is refused at runtime, failing
 * closed), so nothing is reachable by omission. Sessions need the CSRF header on
 * state-changing requests; bearer tokens are never sent ambiently, so they do not.
 * Returns the route table (complete once the app is ready).
 */
export function installAccessControl(app: FastifyInstance, accounts: Accounts): () => RouteRule[] {
  const collected: Array<{ method: string | string[]; url: string; config?: { access?: Access } }> = [];
  app.addHook('onRoute', (route) => {
    collected.push(route as (typeof collected)[number]);
  });
  const table = (): RouteRule[] =>
    collected.flatMap((r) => (Array.isArray(r.method) ? r.method : [r.method]).map((method) => ({ method, url: r.url, access: r.config?.access })));
  app.addHook('onReady', async () => {
    const open = table().filter((r) => r.access === undefined && r.method !== 'HEAD');
    if (open.length > 0) throw new Error(`routes without an access rule: ${open.map((r) => `${r.method} ${r.url}`).join(', ')}`);
  });
  app.addHook('onRequest', async (request) => {
    if (request.is404) return;
    const access = request.routeOptions.config.access;
    request.principal = await authenticate(accounts, { sessionId: request.cookies[SESSION_COOKIE], bearer: bearerOf(request) });
    if (access === 'public') return;
    if (access === undefined) throw new TributaryError('FORBIDDEN', 'this route has no access rule');
    const principal = request.principal;
    if (!principal) throw new TributaryError('UNAUTHORIZED');
    if (ROLE_RANK[principal.user.role] < ROLE_RANK[access]) throw new TributaryError('FORBIDDEN', `needs the ${access} role`);
    if (principal.via === 'session' && !SAFE_METHODS.has(request.method) && !csrfMatches(request.headers[CSRF_HEADER], principal.session!.csrfToken)) {
      throw new TributaryError('CSRF_INVALID');
    }
  });
  return table;
}

/** Who did it, from where: for the audit log. */
export function actorOf(request: FastifyRequest): { actor: string; ip: string } {
  return { actor: request.principal?.user.username ?? 'anonymous', ip: request.ip };
}
