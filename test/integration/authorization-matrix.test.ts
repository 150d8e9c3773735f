import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fastifyCookie from '@fastify/cookie';
import Fastify from 'fastify';
import pino from 'pino';
import { io } from 'socket.io-client';
import { Compile } from 'typebox/compile';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../server/app.ts';
import { installAccessControl, type Access } from '../../server/auth/access.ts';
import { ROLE_RANK, type Role } from '../../server/auth/model.ts';
import { CLIENT_EVENT_ACCESS } from '../../server/gateway/gateway.ts';
import { cryptoReady } from '../../shared/crypto/sodium.ts';
import { CLIENT_EVENT_SCHEMAS, type ClientToServerEvents } from '../../shared/protocol/events.ts';
import { withTaskDefaults } from '../../shared/protocol/task.ts';
import { joinRaw, type RawSocket } from '../support/harness.ts';

/**
 * Every HTTP route and every socket event, tried as every kind of caller. The rows come
 * from the app's own route table and the gateway's event table, so a route or event added
 * without a rule (or without a sample here) fails this test.
 */

type Caller = 'anonymous' | Role | 'client of another task';
const CALLERS: Caller[] = ['anonymous', 'viewer', 'operator', 'admin', 'client of another task'];
/** The codes of a refusal by the access rules (others, like a 404, mean the caller was let in). */
const HTTP_DENIED = new Set(['UNAUTHORIZED', 'FORBIDDEN', 'CSRF_INVALID']);
const SOCKET_DENIED = new Set(['NOT_JOINED', 'NOT_ENROLLED']);

/** What a caller should get from a route: allowed, or refused with 401 / 403. */
function expectedHttp(access: Access, caller: Caller): 'allowed' | 401 | 403 {
  if (access === 'public') return 'allowed';
  if (caller === 'anonymous' || caller === 'client of another task') return 401;
  return ROLE_RANK[caller] >= ROLE_RANK[access] ? 'allowed' : 403;
}

describe('authorization matrix', () => {
  let app: App;
  let dataDir: string;
  let url: string;
  const tokens = new Map<Role, string>();
  let taskA: number;
  let taskB: number;
  const rows: string[][] = [];

  beforeAll(async () => {
    await cryptoReady();
    dataDir = mkdtempSync(join(tmpdir(), 'tributary-matrix-'));
    app = await buildApp({ dataDir, logger: pino({ level: 'silent' }) });
    url = await app.http.listen({ port: 0, host: '127.0.0.1' });
    for (const role of ['viewer', 'operator', 'admin'] as const) {
      const { user } = await app.accounts.createUser(role, 'matrix password!', role, { actor: 'test', ip: '' });
      tokens.set(role, (await app.accounts.createApiToken(user, 'matrix', '')).token);
    }
    taskA = (await app.store.createTask(withTaskDefaults({ name: 'A', testLimit: 100 }))).id;
    taskB = (await app.store.createTask(withTaskDefaults({ name: 'B' }))).id;
  });
  afterAll(async () => {
    console.log(`\n${rows.map((r) => r.join(' | ')).join('\n')}`);
    await app.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /**
   * A concrete request for a route pattern: ids name nothing and bodies are empty, so no
   * call changes anything; a 404 or a schema error past the access check still means "let in".
   */
  function concrete(pattern: string): string {
    return pattern.replace(':id', '999999').replace(':file', 'model.json').replace(':key', '0'.repeat(64)).replace('*', 'index.html');
  }

  it('answers every HTTP route for each caller as its access rule says', async () => {
    const routes = app.routes().filter((r) => r.method !== 'HEAD');
    expect(routes.length).toBeGreaterThan(25);
    for (const route of routes) {
      expect(route.access, `${route.method} ${route.url} has no rule`).toBeDefined();
      const cells: string[] = [];
      for (const caller of CALLERS) {
        const token = tokens.get(caller as Role);
        const res = await app.http.inject({
          method: route.method as 'GET',
          url: concrete(route.url),
          headers: token ? { authorization: `Bearer ${token}` } : {},
          ...(route.method === 'GET' || route.method === 'DELETE' ? {} : { payload: {} }),
        });
        const code = res.headers['content-type']?.toString().includes('json') ? (res.json() as { code?: string }).code : undefined;
        const got = code && HTTP_DENIED.has(code) ? res.statusCode : 'allowed';
        expect(got, `${route.method} ${route.url} as ${caller}: ${res.statusCode} ${code ?? ''}`).toBe(expectedHttp(route.access!, caller));
        cells.push(String(got));
      }
      rows.push([`${route.method} ${route.url}`, route.access!, ...cells]);
    }
  });

  /** A payload per event that passes its schema, so what answers is the authorization check. */
  const samples: { [E in keyof ClientToServerEvents]: (taskId: number) => unknown[] } = {
    'auth:challenge': () => [{}],
    'task:join': (taskId) => [{ taskId, kind: 'edge', proof: new Uint8Array(64), identityKey: new Uint8Array(32).fill(9) }],
    'client:ready': (taskId) => [{ taskId, samples: 10, backend: 'cpu', cachedVersion: -1 }],
    'update:chunk': (taskId) => [{ taskId, round: 1, index: 0, count: 1, totalBytes: 8, samples: 10, attempt: '0000000000000000' }, new Uint8Array(8)],
    'secagg:advertise': (taskId) => [{ taskId, round: 1, shareKey: new Uint8Array(32), maskKey: new Uint8Array(32), commitment: new Uint8Array(32), signature: new Uint8Array(64) }],
    'secagg:share': (taskId) => [{ taskId, round: 1, boxes: new Uint8Array(0) }],
    'secagg:survivors': (taskId) => [{ taskId, round: 1 }],
    'secagg:confirm': (taskId) => [{ taskId, round: 1, signature: new Uint8Array(64) }],
    'secagg:reveal': (taskId) => [{ taskId, round: 1, shares: new Uint8Array(0) }],
  };

  it('answers every client socket event for each caller as the gateway table says', async () => {
    const events = Object.keys(CLIENT_EVENT_ACCESS) as Array<keyof ClientToServerEvents>;
    expect(Object.keys(samples).sort()).toEqual([...events].sort());
    for (const event of events) expect(Compile(CLIENT_EVENT_SCHEMAS[event]).Check(samples[event](taskA)[0]), event).toBe(true);

    // Users' credentials mean nothing on the client namespace: only an enrolled, joined identity does.
    const connect = (token?: string): RawSocket => io(url, { transports: ['websocket'], ...(token ? { auth: { token }, extraHeaders: { authorization: `Bearer ${token}` } } : {}) });
    const other = await joinRaw(url, taskB, (key) => enrollIn(taskB, key));
    expect(other.reply.ok).toBe(true);
    const member = await joinRaw(url, taskA, (key) => enrollIn(taskA, key));
    expect(member.reply.ok).toBe(true);
    const sockets: Record<Caller | 'client of this task', RawSocket> = {
      anonymous: connect(),
      viewer: connect(tokens.get('viewer')),
      operator: connect(tokens.get('operator')),
      admin: connect(tokens.get('admin')),
      'client of another task': other.socket,
      'client of this task': member.socket,
    };
    for (const event of events) {
      const cells: string[] = [];
      for (const [caller, socket] of Object.entries(sockets)) {
        const reply = (await (socket.timeout(10_000).emitWithAck as (e: string, ...a: unknown[]) => Promise<{ ok: boolean; error?: { code: string } }>)(event, ...samples[event](taskA)));
        const refused = !reply.ok && SOCKET_DENIED.has(reply.error!.code);
        const mayPass = CLIENT_EVENT_ACCESS[event] === 'connected' || (CLIENT_EVENT_ACCESS[event] === 'joined' && caller === 'client of this task');
        expect(refused, `${event} as ${caller}: ${reply.ok ? 'ok' : reply.error!.code}`).toBe(!mayPass);
        cells.push(reply.ok ? 'ok' : reply.error!.code);
      }
      rows.push([`socket ${event}`, CLIENT_EVENT_ACCESS[event], ...cells]);
    }
    for (const socket of Object.values(sockets)) socket.disconnect();

    // The watchers' namespace: signed-in users only.
    for (const caller of CALLERS) {
      const token = tokens.get(caller as Role);
      const admin = io(`${url}/admin`, { transports: ['websocket'], ...(token ? { auth: { token } } : {}) });
      const outcome = await new Promise<string>((resolve) => {
        admin.on('connect', () => resolve('connected'));
        admin.on('connect_error', (e: { data?: { code?: string } }) => resolve(e.data?.code ?? 'error'));
      });
      admin.close();
      expect(outcome, `/admin as ${caller}`).toBe(caller === 'anonymous' || caller === 'client of another task' ? 'UNAUTHORIZED' : 'connected');
      rows.push([`socket /admin as ${caller}`, 'viewer', outcome]);
    }
  });

  async function enrollIn(taskId: number, identityKey: Uint8Array): Promise<void> {
    const { token } = await app.enrollments.createToken(taskId, { kind: 'client', label: 'matrix', maxUses: 1, expiresInHours: 0 }, { actor: 'test', ip: '' });
    await app.enrollments.enrollWithToken(token, identityKey, '127.0.0.1');
  }

  it('refuses to start an app with a route that has no access rule', async () => {
    const bare = Fastify();
    await bare.register(fastifyCookie);
    installAccessControl(bare, app.accounts);
    bare.get('/forgotten', () => 'open?');
    await expect(bare.ready()).rejects.toThrow('routes without an access rule: GET /forgotten');
  });
});
