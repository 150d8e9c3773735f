import { describe, expect, it } from 'vitest';
import { createCombineRule } from '../../server/strategies/combine/index.ts';
import { meanRule } from '../../server/strategies/combine/mean.ts';
import { composeStrategy, packStates } from '../../server/strategies/compose.ts';
import { createStrategy } from '../../server/strategies/index.ts';
import { fedAvg } from '../../server/strategies/optimizers/fedavg.ts';
import { fedAvgM } from '../../server/strategies/optimizers/fedavgm.ts';
import type { ClientUpdate, Strategy } from '../../server/strategies/strategy.ts';
import { withCentralDp, type CentralDpOptions } from '../../server/strategies/wrappers/central-dp.ts';
import { withNormBound } from '../../server/strategies/wrappers/norm-bound.ts';
import { PrivacyBudget } from '../../server/privacy/budget.ts';
import type { Weights } from '../../shared/ml/aggregate.ts';
import { adaptiveClipNoise } from '../../shared/privacy/accountant.ts';
import { addGaussianNoise } from '../../shared/privacy/noise.ts';
import { TASK_DEFAULTS, withTaskDefaults, type Aggregation, type TaskSpecInput } from '../../shared/protocol/task.ts';
import { createRng, type Rng } from '../../shared/random.ts';

/**
 * The norm-bound and central-DP wrappers against examples worked by hand. Every clip here
 * is of a vector whose norm is a whole number, so the clipped values are short decimals;
 * clipToNorm rounds toward zero to float32, hence toBeCloseTo at 6 digits (|error| < 5e-7,
 * against float32's ~6e-8 relative rounding) wherever a clip or a mean is involved.
 */

const f = (...values: number[]) => Float32Array.from(values);
const update = (clientId: string, delta: Weights, weight = 1): ClientUpdate => ({ clientId, delta, weight });
const aggregation = (over: Partial<Aggregation>): Aggregation => ({ ...TASK_DEFAULTS.aggregation, ...over });
const base = (rule: Partial<Aggregation> = {}): Strategy => composeStrategy(createCombineRule(aggregation(rule)), fedAvg());
const values = (w: Weights, t = 0) => Array.from(w[t]!);
const closeTo = (actual: readonly number[], expected: readonly number[]) => {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((v, i) => expect(v, `value ${i}`).toBeCloseTo(expected[i]!, 6));
};

/**
 * Three updates of known norms, one tensor of two values, with unequal sample weights:
 *   a = (3, 4)     ‖a‖ = 5   weight 100   clipped to C = 1: (0.6, 0.8)
 *   b = (0.3, 0.4) ‖b‖ = 0.5 weight 3     within C: unchanged
 *   c = (0, −2)    ‖c‖ = 2   weight 1     clipped to C = 1: (0, −1)
 */
const three = () => [update('a', [f(3, 4)], 100), update('b', [f(0.3, 0.4)], 3), update('c', [f(0, -2)], 1)];

function centralDp(options: Partial<CentralDpOptions> = {}, inner: Strategy = base()): Strategy {
  return withCentralDp(inner, { clipNorm: 1, updateNoiseMultiplier: 0, expectedClients: 5, rng: createRng(1), ...options });
}

/** One N(0, std²) draw, exactly as the wrapper draws the clip count's noise (the first of a polar pair). */
function drawGaussian(std: number, rng: Rng): number {
  const one = new Float64Array(1);
  addGaussianNoise(one, std, rng);
  return one[0]!;
}

describe('norm-bound wrapper', () => {
  it('scales each update onto the L2 ball before the inner rule, keeping the mean\'s sample weights', async () => {
    // Bound 1, weights 1, 3, 1 this time:
    //   Σ w·x = 1·(0.6, 0.8) + 3·(0.3, 0.4) + 1·(0, −1) = (1.5, 1.0);  Σ w = 5  →  (0.3, 0.2)
    const updates = [update('a', [f(3, 4)], 1), update('b', [f(0.3, 0.4)], 3), update('c', [f(0, -2)], 1)];
    const strategy = withNormBound(base(), 1);
    const combined = strategy.combine(updates, 1);
    closeTo(values(combined.delta), [0.3, 0.2]);
    expect(combined.discarded).toEqual([]);
    // The updates themselves are left as they came.
    expect(values(updates[0]!.delta)).toEqual([3, 4]);
    expect(values(updates[2]!.delta)).toEqual([0, -2]);
    // A bound above every norm changes nothing: ((3 + 0.9 + 0)/5, (4 + 1.2 − 2)/5) = (0.78, 0.64).
    closeTo(values(withNormBound(base(), 5).combine(updates, 1).delta), [0.78, 0.64]);
  });

  it('bounds before a robust rule too, and names both in the report', () => {
    const strategy = withNormBound(base({ rule: 'median' }), 1);
    // Median of the clipped coordinates, where clipping decides the answer:
    //   a = (3, 4)     ‖a‖ = 5      → (0.6, 0.8)
    //   b = (0.5, 0.5) ‖b‖ = 0.707  kept
    //   d = (0.9, 0.9) ‖d‖ = 1.2728 → (0.7071068, 0.7071068)
    //   x {0.6, 0.5, 0.7071} → 0.6;  y {0.8, 0.5, 0.7071} → 0.7071068
    //   (unclipped: x {3, 0.5, 0.9} → 0.9, y {4, 0.5, 0.9} → 0.9)
    const decisive = [update('a', [f(3, 4)]), update('b', [f(0.5, 0.5)]), update('d', [f(0.9, 0.9)])];
    closeTo(values(strategy.combine(decisive, 1).delta), [0.6, 0.7071068]);
    expect(strategy.report()).toEqual({ combine: 'norm-bound(median)', optimizer: 'fedavg' });
  });

  it('passes the step through to the optimizer untouched', async () => {
    const strategy = withNormBound(base(), 1);
    const next = await strategy.step([f(1, 2)], [f(10, -10)], 1); // FedAvg: x + Δ, the step is not bounded
    expect(values(next)).toEqual([11, -8]);
  });
});

describe('central-DP wrapper (DP-FedAvg)', () => {
  it('divides the clipped sum by the expected cohort m, not by the n that came, and ignores sample weights', () => {
    // Clipped sum (0.6 + 0.3 + 0, 0.8 + 0.4 − 1) = (0.9, 0.2).
    //   m = 5 (n = 3 came): (0.18, 0.04).  Over n it would be (0.3, 0.0667); sample-weighted
    //   (100·(0.6, 0.8) + 3·(0.3, 0.4) + (0, −1)) / 104 = (0.5856, 0.7702).
    closeTo(values(centralDp({ expectedClients: 5 }).combine(three(), 1).delta), [0.18, 0.04]);
    //   m = 2 (more came than expected): (0.45, 0.1).
    closeTo(values(centralDp({ expectedClients: 2 }).combine(three(), 1).delta), [0.45, 0.1]);
    // A different C: C = 0.5 clips all three: a → (0.3, 0.4), b stays (norm 0.5 ≤ 0.5), c → (0, −0.5);
    //   sum (0.6, 0.3), m = 3 → (0.2, 0.1).
    closeTo(values(centralDp({ clipNorm: 0.5, expectedClients: 3 }).combine(three(), 1).delta), [0.2, 0.1]);
  });

  it('adds Gaussian noise of std z·C/m to every value, drawn from the rng it was given, tensor by tensor', () => {
    // Two tensors, the first of odd length: the polar method draws pairs, so a tensor of 3
    // values discards the second normal of its last pair and the next tensor starts afresh.
    const updates = [
      update('a', [f(3, 0, 0), f(4, 0)]), // ‖a‖ = 5 → (0.6, 0, 0 | 0.8, 0)
      update('b', [f(0, 0.5, 0), f(0, 0)]), // ‖b‖ = 0.5, kept
    ];
    const z = 2;
    const m = 5;
    const clipNorm = 1;
    const noiseless = centralDp({ expectedClients: m, clipNorm }).combine(updates, 1).delta;
    // Sum (0.6, 0.5, 0 | 0.8, 0) / 5 = (0.12, 0.1, 0 | 0.16, 0).
    closeTo(values(noiseless, 0), [0.12, 0.1, 0]);
    closeTo(values(noiseless, 1), [0.16, 0]);

    const noised = centralDp({ expectedClients: m, clipNorm, updateNoiseMultiplier: z, rng: createRng(42) }).combine(updates, 1).delta;
    // Re-draw: std = z·C/m = 2·1/5 = 0.4, tensor 0 first, from the same seed.
    const redraw = createRng(42);
    const expected = noiseless.map((t) => {
      const out = t.slice();
      addGaussianNoise(out, (z * clipNorm) / m, redraw);
      return out;
    });
    expect(noised).toEqual(expected);
    // The noise is really there (a draw of exactly 0 has probability 0).
    for (let t = 0; t < 2; t++) noised[t]!.forEach((v, i) => expect(v).not.toBe(noiseless[t]![i]));
  });

  it('adapts C by exp(−0.2·(b̃ − γ)), b̃ the unclipped count over m, and clips the next round with it', () => {
    // C₀ = 1, m = 4, γ = 0.5, count noise 1e-12 (negligible: 1e-12/4 moves b̃ by far less than float32 resolves).
    const strategy = centralDp({ expectedClients: 4, adaptive: { targetQuantile: 0.5, countNoiseStd: 1e-12 } });
    // Round 1: values 0.5, 2, −3, 4 (norms 0.5, 2, 3, 4) → one unclipped; clipped (0.5, 1, −1, 1),
    //   sum 1.5, /4 = 0.375.  b̃ = 1/4, C₁ = 1·exp(−0.2·(0.25 − 0.5)) = exp(0.05) = 1.0512711
    const round1 = strategy.combine([update('a', [f(0.5)]), update('b', [f(2)]), update('c', [f(-3)]), update('d', [f(4)])], 1);
    closeTo(values(round1.delta), [0.375]);
    expect(strategy.report().clipNorm).toBe(1); // the C this round clipped with
    // Round 2: norms 1.04, 0.1, 0.2, 5 with C₁ ≈ 1.0513: 1.04 is now within C (at C = 1 it was not).
    //   clipped (1.04, 0.1, 0.2, C₁), sum 1.34 + 1.0512711 = 2.3912711, /4 = 0.5978178
    //   (had C stayed 1: (1 + 0.1 + 0.2 + 1)/4 = 0.575)
    //   b̃ = 3/4, C₂ = C₁·exp(−0.2·(0.75 − 0.5)) = exp(0.05)·exp(−0.05) = 1
    const round2 = strategy.combine([update('a', [f(1.04)]), update('b', [f(0.1)]), update('c', [f(0.2)]), update('d', [f(5)])], 2);
    expect(strategy.report().clipNorm).toBeCloseTo(Math.exp(0.05), 6);
    closeTo(values(round2.delta), [0.5978178]);
    strategy.combine([update('a', [f(0.1)])], 3);
    expect(strategy.report().clipNorm).toBeCloseTo(1, 6);
  });

  it('noises the clip count with σ_b from the same rng, after the update noise', () => {
    // σ_b = 0.5 (not negligible), z = 1, m = 4, γ = 0.5, C₀ = 1; the rng feeds the update
    // noise first (one tensor of 1 value: one polar pair), then the count's draw.
    const m = 4;
    const strategy = centralDp({ expectedClients: m, updateNoiseMultiplier: 1, adaptive: { targetQuantile: 0.5, countNoiseStd: 0.5 }, rng: createRng(7) });
    const updates = [update('a', [f(0.5)]), update('b', [f(2)]), update('c', [f(3)]), update('d', [f(4)])];
    const combined = strategy.combine(updates, 1);
    const redraw = createRng(7);
    const expectedDelta = f(3.5 / m); // clipped sum 0.5 + 1 + 1 + 1, over m
    addGaussianNoise(expectedDelta, (1 * 1) / m, redraw);
    expect(combined.delta).toEqual([expectedDelta]);
    const count = 1 + drawGaussian(0.5, redraw); // one update within C, plus N(0, σ_b²)
    strategy.combine([update('a', [f(0.1)])], 2);
    expect(strategy.report().clipNorm).toBe(Math.fround(1 * Math.exp(-0.2 * (count / m - 0.5))));
    expect(count).not.toBeCloseTo(1, 3); // the draw moved the count, so the check above saw it
  });

  it('names the rule it wraps and the C it used: dp-central(mean)', () => {
    const strategy = centralDp({ clipNorm: 0.75 });
    strategy.combine(three(), 1);
    expect(strategy.report()).toEqual({ combine: 'dp-central(mean)', optimizer: 'fedavg', clipNorm: 0.75 });
  });

  it('checkpoints its C with the inner state and restores both', async () => {
    const adaptive = { targetQuantile: 0.5, countNoiseStd: 1e-12 };
    const strategy = centralDp({ expectedClients: 4, adaptive }, composeStrategy(meanRule(), fedAvgM()));
    strategy.combine([update('a', [f(0.5)]), update('b', [f(2)]), update('c', [f(-3)]), update('d', [f(4)])], 1); // C₁ = exp(0.05)
    await strategy.step([f(0)], [f(0.25)], 1); // momentum v = 0.25
    const saved = strategy.state();

    const restored = centralDp({ expectedClients: 4, adaptive }, composeStrategy(meanRule(), fedAvgM()));
    restored.restore(saved);
    expect(restored.state()).toEqual(saved);
    // It clips round 2 with C₁: 1.04 kept, 5 → C₁ (see the adaptive test: 0.5978178) …
    const round2 = [update('a', [f(1.04)]), update('b', [f(0.1)]), update('c', [f(0.2)]), update('d', [f(5)])];
    closeTo(values(restored.combine(round2, 2).delta), [0.5978178]);
    expect(restored.report().clipNorm).toBe(Math.fround(Math.exp(0.05)));
    // … and the optimizer steps on from its momentum: v = 0.5·0.25 + 0.5 = 0.625.
    expect(values(await restored.step([f(0)], [f(0.5)], 2))).toEqual([0.625]);
  });

  it('keeps its starting C when a checkpoint has another layout or no usable C', () => {
    const fresh = () => centralDp({ clipNorm: 0.75 });
    const within = [update('a', [f(0.7)])]; // kept at C = 0.75, clipped at any C below 0.7
    for (const state of [[], [f(1, 2, 3)], packStates([[], [f(0)]]), packStates([[], [f(-1)]])]) {
      const strategy = fresh();
      strategy.restore(state);
      strategy.combine(within, 1);
      expect(strategy.report().clipNorm).toBe(0.75);
    }
  });
});

describe('createStrategy: which wrappers a task gets', () => {
  const spec = (input: TaskSpecInput) => withTaskDefaults({ name: 'x', ...input });
  const report = (input: TaskSpecInput) => {
    const s = spec(input);
    const strategy = createStrategy(s, { budget: PrivacyBudget.of(s, 100), rng: createRng(3) });
    strategy.combine([update('a', [f(0.1)]), update('b', [f(0.2)]), update('c', [f(0.3)])], 1);
    return strategy.report();
  };

  it('wraps norm bounding on plain rounds only, and central DP outside it', () => {
    expect(report({}).combine).toBe('mean');
    expect(report({ aggregation: { normBound: 2 } }).combine).toBe('norm-bound(mean)');
    // A secure task's devices bound their own inputs: no server-side wrapper.
    expect(report({ secure: true, aggregation: { normBound: 2 } }).combine).toBe('mean');
    const central = { mode: 'central' as const, noiseMultiplier: 1, epsilon: 1e4, clipNorm: 0.5 };
    expect(report({ privacy: central })).toEqual({ combine: 'dp-central(mean)', optimizer: 'fedavg', clipNorm: 0.5 });
    expect(report({ privacy: central, aggregation: { normBound: 2 }, strategy: 'fedadam' })).toEqual({ combine: 'dp-central(norm-bound(mean))', optimizer: 'fedadam', clipNorm: 0.5 });
    // Distributed DP is the devices' and the secure round's: no server-side noise.
    expect(report({ secure: true, privacy: { mode: 'distributed', epsilon: 1e4, noiseMultiplier: 1 } }).combine).toBe('mean');
  });

  it('runs central DP with the budget\'s noise: z_Δ = adaptiveClipNoise(z, m/20) and σ_b = m/20 under adaptive clipping', () => {
    // m = 10: σ_b = 0.5, z = 0.5 → z_Δ = (0.5⁻² − 1⁻²)^−½ = 1/√3 = 0.57735.
    const s = spec({ clientsPerRound: 10, privacy: { mode: 'central', noiseMultiplier: 0.5, epsilon: 1e4, targetQuantile: 0.5, clipNorm: 1 } });
    const budget = PrivacyBudget.of(s, 100)!;
    expect(budget.central).toEqual({ updateNoiseMultiplier: adaptiveClipNoise(0.5, 0.5), countNoiseStd: 0.5 });
    expect(budget.central!.updateNoiseMultiplier).toBeCloseTo(1 / Math.sqrt(3), 12);
    const updates = Array.from({ length: 10 }, (_, i) => update(`c${i}`, [f(0.3 * i, -0.1 * i, 0.05)]));
    const viaTask = createStrategy(s, { budget, rng: createRng(11) });
    const byHand = withCentralDp(composeStrategy(meanRule(), fedAvg()), {
      clipNorm: 1,
      updateNoiseMultiplier: 1 / Math.sqrt(3),
      expectedClients: 10,
      adaptive: { targetQuantile: 0.5, countNoiseStd: 0.5 },
      rng: createRng(11),
    });
    for (let round = 1; round <= 3; round++) {
      const a = viaTask.combine(updates, round);
      const b = byHand.combine(updates, round);
      for (let i = 0; i < 3; i++) expect(a.delta[0]![i]).toBeCloseTo(b.delta[0]![i]!, 6);
      expect(viaTask.report().clipNorm).toBeCloseTo(byHand.report().clipNorm!, 6);
    }
  });
});
