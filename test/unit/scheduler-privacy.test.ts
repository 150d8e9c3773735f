import { afterEach, describe, expect, it, vi } from 'vitest';
import { ClientRegistry, ClientSession } from '../../server/gateway/clients.ts';
import { Scheduler } from '../../server/rounds/scheduler.ts';
import { withTaskDefaults, type TaskRecord, type TaskSpecInput } from '../../shared/protocol/task.ts';
import { createRng } from '../../shared/random.ts';

/**
 * Poisson sampling for differentially private tasks: every ready client joins a round
 * independently with probability q = clientsPerRound / population, drawn from the CSPRNG
 * (crypto.getRandomValues). The test replaces getRandomValues with a seeded generator, so
 * every run sees the same draws; the margins below are what would hold for any seed.
 *
 * Margins are 6 standard deviations of the statistic under correct Poisson sampling: a
 * correct sampler fails one with probability < 2e-9 (for a new seed), so the check is about
 * the sampler, not the seed; an over-selecting or fixed-size sampler misses by far more.
 */

let nextId = 0;
const task = (id: number, spec: TaskSpecInput): TaskRecord => ({ id, spec: withTaskDefaults({ name: `t${id}`, ...spec }), status: 'running', completedRounds: 0, createdAt: '' });

function session(registry: ClientRegistry, taskId: number): ClientSession {
  nextId++;
  const identityKey = new Uint8Array(32);
  new DataView(identityKey.buffer).setUint32(0, nextId); // one device per session
  const s = new ClientSession({ id: `c${String(nextId).padStart(4, '0')}`, taskId, kind: 'edge', identityKey, shard: null, resumeToken: new Uint8Array(32) });
  s.attach({ bytesRead: () => 0, sendRoundStart: async () => {}, drop: () => undefined });
  s.samples = 1_000;
  s.capabilities = { throughput: 1_000 };
  registry.add(s);
  return s;
}

/** crypto.getRandomValues from a seeded xoshiro, counting its calls. */
function seededCrypto(seed: number): { calls: () => number } {
  const rng = createRng(seed);
  let calls = 0;
  vi.stubGlobal('crypto', {
    getRandomValues(array: Uint32Array) {
      calls++;
      for (let i = 0; i < array.length; i++) array[i] = rng.nextUint32();
      return array;
    },
  });
  return { calls: () => calls };
}

function stats(xs: readonly number[]): { mean: number; variance: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1);
  return { mean, variance };
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('scheduler: Poisson sampling for differentially private tasks', () => {
  it('draws cohorts of binomial size around q·ready, each client independently at rate q, never over-selecting', () => {
    const crypto = seededCrypto(20_240_601);
    const registry = new ClientRegistry();
    for (let i = 0; i < 200; i++) session(registry, 1);
    const ready = registry.readyFor(1);
    // q = clientsPerRound / population = 20 / 200 = 0.1 (population = shards).
    const dp = task(1, { shards: 200, clientsPerRound: 20, privacy: { mode: 'central' } });
    const scheduler = new Scheduler(registry);
    const rounds = 2_000;
    const sizes: number[] = [];
    const picked = new Map<string, number>(ready.map((c) => [c.id, 0]));
    for (let round = 1; round <= rounds; round++) {
      const plan = scheduler.plan(dp, round, ready);
      const ids = plan.participants.map((p) => p.id);
      // Only ready clients, each at most once: nothing added on top of the sample.
      expect(new Set(ids).size).toBe(ids.length);
      for (const id of ids) {
        expect(picked.has(id)).toBe(true);
        picked.set(id, picked.get(id)! + 1);
      }
      expect(plan.enough).toBeLessThanOrEqual(plan.participants.length);
      sizes.push(ids.length);
    }
    // Cohort size ~ Binomial(200, 0.1): mean 20, variance 200·0.1·0.9 = 18 (sd 4.24).
    //   mean of 2,000: sd 4.24/√2000 = 0.095 → ±0.57 (over-selecting 30 % would give 26)
    //   sample variance: sd ≈ 18·√(2/2000) = 0.57 (binomial excess kurtosis 0.026 is negligible)
    //   → ±3.4 (a fixed-size cohort would give 0)
    const { mean, variance } = stats(sizes);
    expect(Math.abs(mean - 20)).toBeLessThan(6 * Math.sqrt(18 / rounds));
    expect(Math.abs(variance - 18)).toBeLessThan(6 * 18 * Math.sqrt(2 / rounds));
    // The sample is not capped at clientsPerRound: a binomial exceeds its mean in ~44 % of rounds.
    expect(Math.max(...sizes)).toBeGreaterThan(20);
    expect(Math.min(...sizes)).toBeLessThan(20);
    // Each client: Binomial(2000, 0.1), mean 200, sd √180 = 13.4 → ±80 (6 sd; 200 clients, so
    // the union bound on a false alarm is 200·2e-9). A sampler favouring the first ids in
    // order would put some at 0 and others at 2,000.
    for (const [id, n] of picked) expect(Math.abs(n - 200), id).toBeLessThan(6 * Math.sqrt(rounds * 0.1 * 0.9));
    // Drawn from the CSPRNG: one refill of its buffer per plan (400 words for 200 clients).
    expect(crypto.calls()).toBe(rounds);
  });

  it('samples among the clients that are ready: q·ready when fewer than the population are', () => {
    seededCrypto(7);
    const registry = new ClientRegistry();
    for (let i = 0; i < 100; i++) session(registry, 2);
    // population 200, 100 ready: q = 0.1 still, so the mean cohort is 10, not clientsPerRound (20).
    const dp = task(2, { shards: 10, clientsPerRound: 20, privacy: { mode: 'central', population: 200 } });
    const scheduler = new Scheduler(registry);
    const rounds = 1_000;
    const sizes = Array.from({ length: rounds }, (_, r) => scheduler.plan(dp, r + 1, registry.readyFor(2)).participants.length);
    // Binomial(100, 0.1): mean 10, variance 9 → the mean of 1,000 within 6·3/√1000 = 0.57.
    expect(Math.abs(stats(sizes).mean - 10)).toBeLessThan(6 * Math.sqrt(9 / rounds));
  });

  it('is not reproducible from the task seed, unlike the selection of a task without DP', () => {
    const crypto = seededCrypto(3);
    const registry = new ClientRegistry();
    for (let i = 0; i < 50; i++) session(registry, 3);
    const ready = registry.readyFor(3);
    const scheduler = new Scheduler(registry);
    const plain = task(3, { shards: 50, clientsPerRound: 10 });
    const ids = (t: TaskRecord) => scheduler.plan(t, 1, ready).participants.map((p) => p.id);
    // Without DP: seeded by (task seed, round), the same round gives the same cohort, over-selected
    // by 30 % (10 + 3), and the CSPRNG is not touched.
    expect(ids(plain)).toEqual(ids(plain));
    expect(ids(plain)).toHaveLength(13);
    expect(crypto.calls()).toBe(0);
    // With DP: round 1 drawn twice gives two different samples (P(equal) is negligible at q = 0.2 of 50).
    const dp = task(3, { shards: 50, clientsPerRound: 10, privacy: { mode: 'central' } });
    expect(ids(dp)).not.toEqual(ids(dp));
    expect(crypto.calls()).toBe(2);
  });

  // PRODUCT BUG (reported): the plain round closes once `enough` updates are in
  // (round-collection.ts settleIfDone), and for a private task enough = min(clientsPerRound,
  // cohort). A Poisson cohort larger than clientsPerRound (≈ 44 % of rounds here) therefore
  // drops the slowest sampled clients' updates. The DP-FedAvg sum over a fixed denominator m
  // has sensitivity C/m only if every sampled user's clipped update is in it (add/remove
  // adjacency); with the cut, one user's presence can push another's update out, a change of
  // up to 2C. The round must wait for the whole sample.
  it('waits for every sampled client in a private round: enough is the whole cohort', () => {
    seededCrypto(11);
    const registry = new ClientRegistry();
    for (let i = 0; i < 200; i++) session(registry, 4);
    const dp = task(4, { shards: 200, clientsPerRound: 20, privacy: { mode: 'central' } });
    const scheduler = new Scheduler(registry);
    let larger = 0;
    for (let round = 1; round <= 50; round++) {
      const plan = scheduler.plan(dp, round, registry.readyFor(4));
      if (plan.participants.length > 20) larger++;
      expect(plan.enough, `round ${round}: cohort of ${plan.participants.length}`).toBe(plan.participants.length);
    }
    expect(larger).toBeGreaterThan(0);
  });
});
