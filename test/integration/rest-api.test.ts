import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../server/app.ts';
import { TASK_DEFAULTS } from '../../shared/protocol/task.ts';
import { fingerprint, fromBase64 } from '../../shared/crypto/sodium.ts';

describe('REST API', () => {
  let app: App;
  let dataDir: string;
  let inject: (options: InjectOptions) => Promise<LightMyRequestResponse>;
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'tributary-rest-'));
    app = await buildApp({ dataDir, logger: pino({ level: 'silent' }) });
    // An operator's API token: these tests are about the API, the authorization test is elsewhere.
    const { user } = await app.accounts.createUser('operator', 'correct horse battery', 'operator', { actor: 'test', ip: '' });
    const { token } = await app.accounts.createApiToken(user, 'rest test', '');
    inject = (options) => app.http.inject({ ...options, headers: { ...options.headers, authorization: `Bearer ${token}` } });
  });
  afterAll(async () => {
    await app.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('creates a task from a partial spec, filling in the defaults', async () => {
    const res = await inject({
      method: 'POST',
      url: '/api/tasks',
      payload: { name: 'skewed', partition: { kind: 'dirichlet', alpha: 0.5 }, bits: 4 },
    });
    expect(res.statusCode).toBe(201);
    const task = res.json();
    expect(task).toMatchObject({ status: 'created', completedRounds: 0 });
    expect(task.spec).toEqual({ ...TASK_DEFAULTS, name: 'skewed', partition: { kind: 'dirichlet', alpha: 0.5 }, bits: 4 });
    const list = await inject({ url: '/api/tasks' });
    expect(list.json().map((t: { id: number }) => t.id)).toContain(task.id);
  });

  it.each([
    ['an unknown field', { name: 'x', colour: 'red' }],
    ['an unknown aggregation field', { name: 'x', aggregation: { rule: 'median', colour: 'red' } }],
    ['an unknown privacy field', { name: 'x', privacy: { mode: 'off', colour: 'red' } }],
    ['an unknown combine rule', { name: 'x', aggregation: { rule: 'average' } }],
    ['bits the codec does not have', { name: 'x', bits: 3 }],
    ['a non-positive Dirichlet alpha', { name: 'x', partition: { kind: 'dirichlet', alpha: 0 } }],
    ['more required updates than clients per round', { name: 'x', clientsPerRound: 2, minUpdates: 3 }],
  ])('rejects %s with BAD_REQUEST', async (_, payload) => {
    const res = await inject({ method: 'POST', url: '/api/tasks', payload });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('BAD_REQUEST');
  });

  it('answers unknown tasks with TASK_NOT_FOUND', async () => {
    for (const [method, url] of [['GET', '/api/tasks/999'], ['POST', '/api/tasks/999/start'], ['GET', '/api/tasks/999/rounds'], ['GET', '/api/tasks/999/model/model.json']] as const) {
      const res = await inject({ method, url });
      expect(res.statusCode, url).toBe(404);
      expect(res.json().code).toBe('TASK_NOT_FOUND');
    }
  });

  it('refuses to stop a task that is not running', async () => {
    const created = (await inject({ method: 'POST', url: '/api/tasks', payload: { name: 'idle' } })).json();
    const res = await inject({ method: 'POST', url: `/api/tasks/${created.id}/stop` });
    expect(res.statusCode).toBe(409);
    expect(res.json().code).toBe('TASK_NOT_RUNNING');
  });

  it('serves the initial model once a task starts, and refuses rounds not yet trained', async () => {
    const created = (await inject({ method: 'POST', url: '/api/tasks', payload: { name: 'model' } })).json();
    expect((await inject({ method: 'POST', url: `/api/tasks/${created.id}/start` })).statusCode).toBe(200);
    const again = await inject({ method: 'POST', url: `/api/tasks/${created.id}/start` });
    expect(again.json().code).toBe('TASK_ALREADY_RUNNING');
    // Start answers once the task can be served: checkpoint 0 is already on disk.
    const model = await inject({ url: `/api/tasks/${created.id}/model/model.json` });
    expect(model.statusCode).toBe(200);
    expect(model.json().modelTopology.config.name).toBe('mlp_model');
    const future = await inject({ url: `/api/tasks/${created.id}/model/weights.bin?round=5` });
    expect(future.json().code).toBe('ROUND_NOT_FOUND');
    const stopped = await inject({ method: 'POST', url: `/api/tasks/${created.id}/stop` });
    expect(stopped.json().status).toBe('stopped');
  });

  it("serves a model card stating a private task's guarantee and its unit, and null for a task without DP", async () => {
    const plain = (await inject({ method: 'POST', url: '/api/tasks', payload: { name: 'card plain' } })).json();
    const noDp = (await inject({ url: `/api/tasks/${plain.id}/model/card` })).json();
    expect(noDp).toMatchObject({ task: { id: plain.id, name: 'card plain' }, model: { kind: 'mlp', parameters: 199_210, format: 'tfjs-layers' }, data: { dataset: 'fashion-mnist' }, rounds: { planned: 20, completed: 0 }, metrics: [], privacy: null, uploadBytes: 0 });
    const payload = { name: 'card dp', shards: 100, clientsPerRound: 10, privacy: { mode: 'central', epsilon: 3, delta: 1e-5, clipNorm: 0.5 } };
    const dp = (await inject({ method: 'POST', url: '/api/tasks', payload })).json();
    const card = (await inject({ url: `/api/tasks/${dp.id}/model/card` })).json();
    expect(card.aggregation).toMatchObject({ rule: { rule: 'mean' }, optimizer: 'fedavg', secure: false });
    expect(card.privacy).toMatchObject({ mode: 'central', epsilon: 3, delta: 1e-5, spent: 0, roundsLeft: 20, sampleRate: 0.1 });
    expect(card.privacy.guarantee).toMatch(/user level/);
    expect(card.privacy.noiseMultiplier).toBeGreaterThan(0);
  });

  it('publishes the server signing key with its fingerprint, the same across restarts', async () => {
    const first = (await app.http.inject({ url: '/api/server-key' })).json();
    expect(first.fingerprint).toBe(fingerprint(fromBase64(first.publicKey)));
    const again = await buildApp({ dataDir, logger: pino({ level: 'silent' }) });
    expect((await again.http.inject({ url: '/api/server-key' })).json()).toEqual(first);
    await again.close();
  });

  it('documents every API route in OpenAPI', async () => {
    const doc = (await app.http.inject({ url: '/api/openapi.json' })).json();
    const apiRoutes = app.routes().filter((r) => r.url.startsWith('/api/') && r.url !== '/api/openapi.json' && r.method !== 'HEAD');
    const documented = new Set(Object.entries(doc.paths as Record<string, object>).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)));
    expect(apiRoutes.length).toBeGreaterThan(20);
    for (const r of apiRoutes) expect(documented, `${r.method} ${r.url}`).toContain(`${r.method} ${r.url.replace(/:(\w+)/g, '{$1}')}`);
  });
});
