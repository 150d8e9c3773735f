import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FederatedClient } from '../../client/federated-client.ts';
import { PrivacyBudget } from '../../server/privacy/budget.ts';
import { cryptoReady } from '../../shared/crypto/sodium.ts';
import { withTaskDefaults, type Privacy, type TaskRecord, type TaskSpecInput } from '../../shared/protocol/task.ts';
import { inProcessClient, startHarness, type Harness } from '../support/harness.ts';

/**
 * A task's aggregation and privacy settings through the real REST API: what POST /api/tasks
 * refuses (with the typed code and the reason), what GET /api/tasks/:id/privacy reports, and
 * a privacy budget that ends a task, with real in-process clients training real rounds.
 */

/** Central DP makes the accountant's ε depend on nothing but z, q, δ and the rounds: any parameter count will do. */
const ANY_PARAMETERS = 1;

describe('task strategy settings over REST', () => {
  let h: Harness;
  let asOperator: (options: InjectOptions) => Promise<LightMyRequestResponse>;
  const create = (payload: TaskSpecInput) => asOperator({ method: 'POST', url: '/api/tasks', payload });
  const taskCount = async () => (await asOperator({ url: '/api/tasks' })).json().length as number;

  beforeAll(async () => {
    await cryptoReady();
    h = await startHarness();
    const { user } = await h.app.accounts.createUser('operator', 'correct horse battery', 'operator', { actor: 'test', ip: '' });
    const { token } = await h.app.accounts.createApiToken(user, 'strategy settings test', '');
    asOperator = (options) => h.app.http.inject({ ...options, headers: { ...options.headers, authorization: `Bearer ${token}` } });
  });
  afterAll(() => h.close());

  const central = (over: Partial<Privacy> = {}): Partial<Privacy> => ({ mode: 'central', ...over });

  it.each<[string, TaskSpecInput, 'AGGREGATION_INVALID' | 'PRIVACY_INVALID', RegExp]>([
    ['Krum with f too large for clientsPerRound (n = 5 < 2f + 3 = 7)', { clientsPerRound: 5, aggregation: { rule: 'krum', byzantine: 2 } }, 'AGGREGATION_INVALID', /krum: byzantine f = 2 is too many for 5 clients per round; it needs at least 2f \+ 3 = 7/],
    ['Bulyan with n < 4f + 3 (6 < 7)', { clientsPerRound: 6, aggregation: { rule: 'bulyan', byzantine: 1 } }, 'AGGREGATION_INVALID', /bulyan: byzantine f = 1 is too many for 6 clients per round; it needs at least 4f \+ 3 = 7/],
    ['a trimmed mean with β = 0.5', { aggregation: { rule: 'trimmed-mean', trim: 0.5 } }, 'AGGREGATION_INVALID', /trim β = 0\.5 must be at least 0 and below 0\.5/],
    ['Multi-Krum selecting more than n − f', { clientsPerRound: 10, aggregation: { rule: 'multi-krum', byzantine: 2, select: 9 } }, 'AGGREGATION_INVALID', /select = 9 is more than n − f = 10 − 2 = 8/],
    ['a robust rule (median) in a secure task', { secure: true, aggregation: { rule: 'median' } }, 'AGGREGATION_INVALID', /median reads every update, but in a secure round the server sees only their sum/],
    ['central DP in a secure task', { secure: true, privacy: central() }, 'PRIVACY_INVALID', /central DP adds noise on the server.*use distributed DP/],
    ['distributed DP without secure aggregation', { privacy: { mode: 'distributed' } }, 'PRIVACY_INVALID', /distributed DP adds noise on the devices under secure aggregation: turn on secure/],
    ['ε = 0', { privacy: central({ epsilon: 0 }) }, 'PRIVACY_INVALID', /target ε must be positive, got 0$/],
    ['ε < 0', { privacy: central({ epsilon: -1 }) }, 'PRIVACY_INVALID', /target ε must be positive, got -1$/],
    // z = 0.1 at q = 1 (10 of 10 shards): one round alone spends ε ≈ 96.
    ['a budget one round would exceed (z = 0.1, ε = 1)', { privacy: central({ noiseMultiplier: 0.1, epsilon: 1 }) }, 'PRIVACY_INVALID', /one round at noise multiplier 0\.100 already spends ε = \S+ > 1$/],
    ['DP with the median rule', { privacy: central(), aggregation: { rule: 'median' } }, 'PRIVACY_INVALID', /use the mean rule, not median/],
    ['DP in async mode', { mode: 'async', privacy: central() }, 'PRIVACY_INVALID', /differential privacy needs sync rounds/],
  ])('refuses %s, naming the reason, and stores nothing', async (_, payload, code, reason) => {
    const before = await taskCount();
    const res = await create({ name: 'refused', ...payload });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe(code);
    expect(res.json().message).toMatch(reason);
    expect(await taskCount()).toBe(before);
  });

  // PRODUCT BUG (reported): adaptive clipping whose clip-count noise σ_b = m/20 cannot carry
  // its share of z (2σ_b ≤ z) is a privacy setting that cannot hold, but
  // accountant.adaptiveClipNoise throws BAD_REQUEST, which reaches the client as
  // "The request does not match its schema: clipped-count noise std 0.5 is too small for
  // noise multiplier 1 …" instead of PRIVACY_INVALID (route description, docs/errors.md).
  it('refuses adaptive clipping whose count noise cannot carry its share of z with PRIVACY_INVALID', async () => {
    // m = 10: σ_b = 0.5, 2σ_b = 1 ≤ z = 1.
    const res = await create({ name: 'adaptive', clientsPerRound: 10, privacy: central({ noiseMultiplier: 1, targetQuantile: 0.5 }) });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(/clipped-count noise std 0\.5 is too small for noise multiplier 1/);
    expect(res.json().code).toBe('PRIVACY_INVALID');
  });

  it('accepts a valid central-DP task and reports its budget; a task without DP has none', async () => {
    // q = clientsPerRound / population = 10 / 1000; z left at 0: calibrated to keep all 20 rounds within ε = 8.
    const res = await create({ name: 'private', clientsPerRound: 10, rounds: 20, privacy: central({ epsilon: 8, population: 1000 }) });
    expect(res.statusCode).toBe(201);
    const task = res.json() as TaskRecord;
    const status = await asOperator({ url: `/api/tasks/${task.id}/privacy` });
    expect(status.statusCode).toBe(200);
    const body = status.json();
    expect(body).toMatchObject({ mode: 'central', epsilon: 8, delta: 1e-5, spent: 0, roundsLeft: 20, sampleRate: 0.01 });
    expect(body.guarantee).toMatch(/user level/);
    // The calibrated z is the least whose 20 rounds stay within 8: 20 rounds fit, and a little less noise would not.
    const budget = PrivacyBudget.of(task.spec, ANY_PARAMETERS)!;
    expect(body.noiseMultiplier).toBe(budget.noiseMultiplier);
    expect(budget.epsilonAfter(20)).toBeLessThanOrEqual(8);
    const lessNoise = PrivacyBudget.of(withTaskDefaults({ ...task.spec, privacy: { ...task.spec.privacy, epsilon: 1e4, noiseMultiplier: body.noiseMultiplier * 0.99 } }), ANY_PARAMETERS)!;
    expect(lessNoise.epsilonAfter(20)).toBeGreaterThan(8);

    const plain = (await create({ name: 'not private' })).json() as TaskRecord;
    const none = await asOperator({ url: `/api/tasks/${plain.id}/privacy` });
    expect(none.statusCode).toBe(404);
    expect(none.json().code).toBe('NOT_FOUND');
  });

  it('runs a central-DP task to exactly the rounds its budget affords, then refuses to start it again', async () => {
    // Three clients, q = 3/3 = 1, z = 2 given, C = 0.01 (noise std z·C/m = 0.0067 per value: the
    // model stays finite). ε after 1, 2, 3 rounds at z = 2 is read from the accountant, and the
    // target put half-way between rounds 2 and 3: the budget affords k = 2 of the 3 rounds.
    const input: TaskSpecInput = {
      name: 'budget',
      shards: 3,
      clientsPerRound: 3,
      rounds: 3,
      trainLimit: 600,
      testLimit: 200,
      scheduling: 'uniform',
      privacy: central({ noiseMultiplier: 2, clipNorm: 0.01 }),
    };
    const probe = PrivacyBudget.of(withTaskDefaults({ ...input, privacy: { ...input.privacy, epsilon: 1e4 } }), ANY_PARAMETERS)!;
    const spent = [1, 2, 3].map((r) => probe.epsilonAfter(r));
    const target = (spent[1]! + spent[2]!) / 2;
    const k = PrivacyBudget.of(withTaskDefaults({ ...input, privacy: { ...input.privacy, epsilon: target } }), ANY_PARAMETERS)!.affordableRounds();
    expect(k).toBe(2);

    const res = await create({ ...input, privacy: { ...input.privacy, epsilon: target } });
    expect(res.statusCode).toBe(201);
    const task = res.json() as TaskRecord;
    const { token } = await h.app.enrollments.createToken(task.id, { kind: 'client', label: 'test', maxUses: 0, expiresInHours: 0 }, { actor: 'test', ip: '' });
    const clients: FederatedClient[] = [0, 1, 2].map((shard) => inProcessClient(h, task.id, shard, { enrollment: { token } }));
    try {
      await Promise.all(clients.map((c) => c.start()));
      expect((await asOperator({ method: 'POST', url: `/api/tasks/${task.id}/start` })).statusCode).toBe(200);
      const done = await h.waitForStatus(task.id, 'completed');
      expect(done.completedRounds).toBe(k);
    } finally {
      for (const c of clients) c.stop();
    }

    const rounds = await h.app.store.listRounds(task.id);
    expect(rounds.map((r) => r.round)).toEqual([1, 2]);
    rounds.forEach((r, i) => {
      expect(r.participants).toBe(3); // q = 1: everyone, every round
      expect(r.rule).toBe('dp-central(mean) → fedavg');
      expect(r.clipNorm).toBeCloseTo(0.01, 6);
      expect(r.epsilon).toBeCloseTo(spent[i]!, 9);
      expect(r.epsilon!).toBeLessThanOrEqual(target);
      if (i > 0) expect(r.epsilon!).toBeGreaterThan(rounds[i - 1]!.epsilon!);
    });

    const status = (await asOperator({ url: `/api/tasks/${task.id}/privacy` })).json();
    expect(status).toMatchObject({ spent: rounds[1]!.epsilon, roundsLeft: 0 });
    // Round 3 would spend more than the target. completedRounds (2) < rounds (3), so the code
    // given is PRIVACY_BUDGET_SPENT, not TASK_FINISHED.
    const again = await asOperator({ method: 'POST', url: `/api/tasks/${task.id}/start` });
    expect(again.statusCode).toBe(409);
    expect(again.json().code).toBe('PRIVACY_BUDGET_SPENT');
    expect((await h.app.store.getTask(task.id))!.status).toBe('completed');
  });
});
