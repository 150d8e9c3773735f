import { describe, expect, it } from 'vitest';
import { bulyanRule, meanNearMedian } from '../../server/strategies/combine/bulyan.ts';
import { centeredClippingRule } from '../../server/strategies/combine/centered-clipping.ts';
import { pairwiseSquaredDistances } from '../../server/strategies/combine/distances.ts';
import { checkAggregation, createCombineRule, minimumUpdates } from '../../server/strategies/combine/index.ts';
import { krumRule, multiKrumRule } from '../../server/strategies/combine/krum.ts';
import { medianRule } from '../../server/strategies/combine/median.ts';
import { trimCount, trimmedMeanRule } from '../../server/strategies/combine/trimmed-mean.ts';
import type { ClientUpdate } from '../../server/strategies/strategy.ts';
import type { Weights } from '../../shared/ml/aggregate.ts';
import { clipToNorm, l2Norm, squaredDistance } from '../../shared/ml/norms.ts';
import { CombineRuleName, TASK_DEFAULTS, choicesOf, type Aggregation } from '../../shared/protocol/task.ts';

const f = (...values: number[]) => Float32Array.from(values);
const aggregation = (over: Partial<Aggregation>): Aggregation => ({ ...TASK_DEFAULTS.aggregation, ...over });
const update = (clientId: string, values: number[], weight = 1): ClientUpdate => ({ clientId, delta: [f(...values)], weight });
const values = (w: Weights) => Array.from(w[0]!);
const reversed = (updates: ClientUpdate[]) => [...updates].reverse();

/** Four honest clients and one outlier, 3 coordinates. */
const five = [update('a', [1, 2, 3]), update('b', [2, 0, 3]), update('c', [3, 1, 1]), update('d', [4, 3, 2]), update('e', [100, -100, 50])];

describe('norms', () => {
  it('measures L2 norms and squared distances over all tensors', () => {
    expect(l2Norm([f(3), f(4)])).toBe(5);
    expect(squaredDistance([f(1, 2), f(3)], [f(0, 0), f(1)])).toBe(1 + 4 + 4);
    expect(() => squaredDistance([f(1)], [f(1, 2)])).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
  });

  it('clips onto the bound, never past it, and copies what it keeps', () => {
    const w = [f(3), f(4)];
    const long = clipToNorm(w, 1);
    expect(long.norm).toBe(5);
    expect(long.scaled).toBe(true);
    expect(values(long.clipped)[0]).toBeCloseTo(0.6, 6);
    expect(long.clipped[1]![0]).toBeCloseTo(0.8, 6);
    const ragged = [Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 7)];
    for (const bound of [0.1, 1, 3.3]) expect(l2Norm(clipToNorm(ragged, bound).clipped)).toBeLessThanOrEqual(bound);
    const short = clipToNorm(w, 10);
    expect(short).toEqual({ clipped: w, norm: 5, scaled: false });
    expect(short.clipped[0]).not.toBe(w[0]);
    expect(w[0]![0]).toBe(3);
    expect(() => clipToNorm(w, 0)).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    expect(() => clipToNorm(w, NaN)).toThrow();
  });

  it('computes the pairwise squared-distance matrix once, symmetric with a zero diagonal', () => {
    const deltas = [[f(0, 0), f(0)], [f(1, 0), f(2)], [f(3, 4), f(0)]];
    // d(0,1) = 1 + 4 = 5, d(0,2) = 9 + 16 = 25, d(1,2) = 4 + 16 + 4 = 24
    expect(Array.from(pairwiseSquaredDistances(deltas))).toEqual([0, 5, 25, 5, 0, 24, 25, 24, 0]);
    const big = Array.from({ length: 3 }, (_, k) => [Float32Array.from({ length: 5000 }, (_, i) => Math.cos(i * (k + 1)))]);
    const matrix = pairwiseSquaredDistances(big);
    expect(matrix[1]).toBeCloseTo(squaredDistance(big[0]!, big[1]!), 9);
    expect(matrix[2 * 3 + 1]).toBeCloseTo(squaredDistance(big[1]!, big[2]!), 9);
  });
});

describe('coordinate-wise median', () => {
  it('takes the middle value of every coordinate, the mean of the middle two for an even count', () => {
    // coordinate 0: 1 2 3 4 100 → 3;  1: −100 0 1 2 3 → 1;  2: 1 2 3 3 50 → 3
    expect(medianRule().combine(five)).toEqual({ delta: [f(3, 1, 3)], discarded: [] });
    // without e: 1 2 3 4 → 2.5;  0 1 2 3 → 1.5;  1 2 3 3 → 2.5
    expect(values(medianRule().combine(five.slice(0, 4)).delta)).toEqual([2.5, 1.5, 2.5]);
  });

  it('ignores weights', () => {
    const heavy = five.map((u, i) => ({ ...u, weight: i === 4 ? 1e6 : 1 }));
    expect(values(medianRule().combine(heavy).delta)).toEqual([3, 1, 3]);
  });
});

describe('coordinate-wise trimmed mean', () => {
  it('drops ⌊βn⌋ values from each end of every coordinate and averages the rest', () => {
    // β = 0.2, n = 5: drop 1 from each end.  0: (2 + 3 + 4)/3 = 3;  1: (0 + 1 + 2)/3 = 1;  2: (2 + 3 + 3)/3 = 8/3
    const out = values(trimmedMeanRule(aggregation({ rule: 'trimmed-mean', trim: 0.2 })).combine(five).delta);
    expect(out[0]).toBe(3);
    expect(out[1]).toBe(1);
    expect(out[2]).toBeCloseTo(8 / 3, 6);
  });

  it('trims nothing when βn < 1, and reads ⌊βn⌋ through float noise', () => {
    // β = 0.1, n = 5: ⌊0.5⌋ = 0, the plain mean: (1 + 2 + 3 + 4 + 100)/5 = 22
    expect(values(trimmedMeanRule(aggregation({ rule: 'trimmed-mean', trim: 0.1 })).combine(five).delta)[0]).toBe(22);
    expect(0.29 * 100).toBeLessThan(29);
    expect(trimCount(0.29, 100)).toBe(29);
    expect(trimCount(0.4999999999, 2)).toBe(0);
  });
});

describe('Krum and Multi-Krum', () => {
  // f = 1, n = 5: each score sums the n − f − 2 = 2 smallest squared distances to the others.
  //   a (0,0,0)  b (1,0,0)  c (0,1,0)  d (0,0,2)  e (10,10,10)
  //   a–b 1, a–c 1, a–d 4, a–e 300; b–c 2, b–d 5, b–e 281; c–d 5, c–e 281; d–e 264
  //   scores: a 1+1 = 2, b 1+2 = 3, c 1+2 = 3, d 4+5 = 9, e 264+281 = 545
  const cluster = [update('a', [0, 0, 0], 1), update('b', [1, 0, 0], 1), update('c', [0, 1, 0], 2), update('d', [0, 0, 2], 4), update('e', [10, 10, 10], 1)];
  const f1 = aggregation({ byzantine: 1 });

  it('Krum takes the best-scored update whole and discards the rest', () => {
    expect(krumRule(f1).combine(cluster)).toEqual({ delta: [f(0, 0, 0)], discarded: ['b', 'c', 'd', 'e'] });
  });

  it('Multi-Krum averages the n − f best, sample-weighted, and discards the outlier', () => {
    // a, b, c, d with weights 1, 1, 2, 4: (0 + (1,0,0) + 2·(0,1,0) + 4·(0,0,2))/8 = (0.125, 0.25, 1)
    expect(multiKrumRule(aggregation({ byzantine: 1, select: 0 })).combine(cluster)).toEqual({ delta: [f(0.125, 0.25, 1)], discarded: ['e'] });
  });

  it('breaks a tie in score by clientId, whatever the arrival order', () => {
    // select 2: a (2), then b and c tie at 3 and b wins: (a + b)/2 = (0.5, 0, 0)
    const rule = multiKrumRule(aggregation({ byzantine: 1, select: 2 }));
    const expected = { delta: [f(0.5, 0, 0)], discarded: ['c', 'd', 'e'] };
    expect(rule.combine(cluster)).toEqual(expected);
    expect(rule.combine(reversed(cluster))).toEqual(expected);
  });
});

describe('Bulyan', () => {
  // f = 1, n = 7 = 4f + 3: Krum picks θ = n − 2f = 5, then each coordinate averages the β = θ − 2f = 3 closest to its median.
  //   a (1,1)  b (0,0)  c (0,3)  d (3,1)  e (4,1)  f (3,4)  g (40,−40), g ≈ 3000 from everyone
  //   a–b 2, a–c 5, a–d 4, a–e 9, a–f 13; b–c 9, b–d 10, b–e 17, b–f 25; c–d 13, c–e 20, c–f 10; d–e 1, d–f 9; e–f 10
  // Pick 1 (7 left, 4 nearest): a 2+4+5+9 = 20, b 38, c 37, d 1+4+9+10 = 24, e 37, f 42 → a
  // Pick 2 (6 left, 3 nearest): b 9+10+17 = 36, c 32, d 1+9+10 = 20, e 28, f 29 → d
  // Pick 3 (5 left, 2 nearest): b 9+17 = 26, c 9+10 = 19, e 27, f 20 → c
  // Pick 4 (4 left, 1 nearest): b 17, e 10, f 10 → e (tie with f, lower clientId)
  // Pick 5 (3 left, 1 nearest): b 25, f 25 → b (tie with f); f and g are discarded.
  // Picked a b c d e.  x: 0 0 1 3 4, median 1, the 3 closest 1 0 0 → 1/3.  y: 0 1 1 1 3, median 1 → 1 1 1 → 1.
  const seven = [
    update('a', [1, 1]),
    update('b', [0, 0]),
    update('c', [0, 3]),
    update('d', [3, 1]),
    update('e', [4, 1]),
    update('f', [3, 4]),
    update('g', [40, -40]),
  ];

  it('selects by repeated Krum, averages near the median, and discards the outliers', () => {
    const rule = bulyanRule(aggregation({ byzantine: 1 }));
    const out = rule.combine(seven);
    expect(out.discarded).toEqual(['f', 'g']);
    expect(values(out.delta)[0]).toBeCloseTo(1 / 3, 6);
    expect(values(out.delta)[1]).toBe(1);
    expect(rule.combine(reversed(seven))).toEqual(out);
  });

  it('keeps the window of values around the median centred on exact ties', () => {
    // median 1; after 1 and 1, the next are 0 and 2, both 1 away: the lower side first → (0 + 1 + 1)/3
    expect(meanNearMedian(Float64Array.of(0, 0, 1, 1, 2), 3)).toBeCloseTo(2 / 3, 12);
    // median 2.5 of 1 2 3 4; the 2 closest are 2 and 3
    expect(meanNearMedian(Float64Array.of(1, 2, 3, 4), 2)).toBe(2.5);
    expect(meanNearMedian(Float64Array.of(-9, 1, 2, 3, 50), 5)).toBe(47 / 5);
  });
});

describe('centered clipping', () => {
  it('moves the centre by the mean of the clipped differences, L times', () => {
    // τ = 5, v = 0.  Iteration 1: (1,0) and (0,1) are within τ; (30,40) has norm 50 → (3,4).  v = (4,5)/3.
    // Iteration 2: x − v = (−1/3, −5/3), (−4/3, −2/3) within τ; (86/3, 115/3), norm √20621/3 ≈ 47.867 → (430, 575)/√20621 ≈ (2.994426, 4.004174)
    //   v = (4/3 + (2.994426 − 5/3)/3, 5/3 + (4.004174 − 7/3)/3) = (1.775920, 2.223614)
    const batch = [update('a', [1, 0]), update('b', [0, 1]), update('c', [30, 40])];
    const once = centeredClippingRule(aggregation({ rule: 'centered-clipping', radius: 5, iterations: 1 })).combine(batch);
    expect(values(once.delta)[0]).toBeCloseTo(4 / 3, 6);
    expect(values(once.delta)[1]).toBeCloseTo(5 / 3, 6);
    expect(once.discarded).toEqual([]);
    const twice = values(centeredClippingRule(aggregation({ rule: 'centered-clipping', radius: 5, iterations: 2 })).combine(batch).delta);
    expect(twice[0]).toBeCloseTo(1.77592, 5);
    expect(twice[1]).toBeCloseTo(2.223614, 5);
  });

  it('adapts the radius to the median distance when radius is 0', () => {
    // v = 0, distances 1 2 3 100, τ = (2 + 3)/2 = 2.5: 1 + 2 + 2.5 + 2.5 = 8, v = 8/4 = 2
    const rule = centeredClippingRule(aggregation({ rule: 'centered-clipping', radius: 0, iterations: 1 }));
    expect(values(rule.combine([update('a', [1]), update('b', [2]), update('c', [3]), update('d', [100])]).delta)).toEqual([2]);
  });

  it('centres the next round on the last step, and a restored rule continues bit for bit', () => {
    const settings = aggregation({ rule: 'centered-clipping', radius: 0, iterations: 3 });
    const round1 = [update('a', [0.1, -0.2, 0.3]), update('b', [0.2, 0.1, 0.1]), update('c', [9, 9, 9])];
    const round2 = [update('a', [0.15, -0.1, 0.2]), update('b', [0.3, 0, 0.1]), update('c', [-9, 9, -9])];
    const first = centeredClippingRule(settings);
    expect(first.state!()).toEqual([]);
    const step1 = first.combine(round1).delta;
    expect(first.state!()).toEqual(step1);
    const checkpoint = first.state!();
    const step2 = first.combine(round2).delta;

    const restored = centeredClippingRule(settings);
    restored.restore!(checkpoint);
    expect(restored.combine(round2).delta).toEqual(step2);
    // Memory matters: a fresh rule centred on zeros steps elsewhere.
    expect(centeredClippingRule(settings).combine(round2).delta).not.toEqual(step2);
    // An empty state (a checkpoint from before the first round) starts from zeros again.
    restored.restore!([]);
    expect(restored.combine(round1).delta).toEqual(step1);
    expect(() => restored.restore!([f(NaN, 0, 0)])).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    restored.restore!([f(0, 0)]);
    expect(() => restored.combine(round1)).toThrow(expect.objectContaining({ code: 'UPDATE_WRONG_LENGTH' }));
  });
});

describe('every rule', () => {
  const rules = choicesOf(CombineRuleName);
  const settingsFor = (rule: CombineRuleName) => aggregation({ rule, byzantine: 1, trim: 0.2, iterations: 3 });

  /** Six honest updates in [−1, 1]³ and, last, an outlier `scale` out on every coordinate. */
  const withOutlier = (scale: number) => [
    ...Array.from({ length: 6 }, (_, k) => update(`honest-${k}`, [Math.sin(k + 1), Math.cos(3 * k), Math.sin(7 * k) * 0.5], 1 + k)),
    update('outlier', [scale, scale, -scale], 1),
  ];
  const honestMean = values(createCombineRule(settingsFor('mean')).combine(withOutlier(0).slice(0, 6)).delta);
  const distanceFromHonest = (w: Weights) => Math.sqrt(values(w).reduce((a, x, i) => a + (x - honestMean[i]!) ** 2, 0));

  it('the factory builds every CombineRuleName', () => {
    for (const rule of rules) {
      const built = createCombineRule(settingsFor(rule));
      expect(built.name).toBe(rule);
      expect(built.combine(withOutlier(5)).delta[0]).toHaveLength(3);
    }
  });

  it('an outlier with a huge norm moves the robust rules a bounded amount, and the mean a lot', () => {
    // The honest updates lie in a box of diameter < 2√3 ≈ 3.5; the outlier is 10³ or 10⁶ out on each
    // coordinate with weight 1 of 22, so it drags the mean ≈ √3 · scale/22.
    for (const scale of [1e3, 1e6]) {
      for (const rule of rules) {
        const moved = distanceFromHonest(createCombineRule(settingsFor(rule)).combine(withOutlier(scale)).delta);
        if (rule === 'mean') expect(moved).toBeGreaterThan(scale / 20);
        else expect(moved, `${rule} at ${scale}`).toBeLessThan(3.5);
      }
    }
  });

  it('gives the same step whatever order the updates arrive in', () => {
    const batch = withOutlier(50);
    const shuffled = [batch[3]!, batch[6]!, batch[0]!, batch[5]!, batch[1]!, batch[4]!, batch[2]!];
    for (const rule of rules) expect(createCombineRule(settingsFor(rule)).combine(shuffled), rule).toEqual(createCombineRule(settingsFor(rule)).combine(batch));
  });

  it('never returns NaN for degenerate finite batches (all equal, all zero, the float32 extremes)', () => {
    const same = (v: number[]) => Array.from({ length: 7 }, (_, k) => update(`c${k}`, v));
    for (const rule of rules) {
      expect(createCombineRule(settingsFor(rule)).combine(same([0, 0, 0])).delta, rule).toEqual([f(0, 0, 0)]);
      expect(createCombineRule(settingsFor(rule)).combine(same([2, -1, 0.5])).delta, rule).toEqual([f(2, -1, 0.5)]);
      const extreme = [...same([3e38, -3e38, 1]).slice(0, 4), ...same([-3e38, 3e38, -1]).slice(4).map((u, k) => ({ ...u, clientId: `x${k}` }))];
      expect(values(createCombineRule(settingsFor(rule)).combine(extreme).delta).some(Number.isNaN), rule).toBe(false);
    }
  });

  it('answers a batch it cannot combine with a coded error', () => {
    for (const rule of rules.filter((r) => r !== 'mean')) {
      const built = createCombineRule(settingsFor(rule));
      expect(() => built.combine([]), rule).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
      const ragged = [...withOutlier(5).slice(0, 6), update('z', [1, 2])];
      expect(() => built.combine(ragged), rule).toThrow(expect.objectContaining({ code: 'UPDATE_WRONG_LENGTH' }));
      const nan = [...withOutlier(5).slice(0, 6), update('z', [1, NaN, 2])];
      expect(() => built.combine(nan), rule).toThrow(expect.objectContaining({ code: 'UPDATE_NOT_FINITE' }));
      const twice = [...withOutlier(5).slice(0, 6), update('honest-0', [1, 1, 1])];
      expect(() => built.combine(twice), rule).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
    }
    const tooFew = withOutlier(5).slice(0, 4);
    expect(() => krumRule(aggregation({ byzantine: 1 })).combine(tooFew)).toThrow(/krum needs at least 5 updates in a round, got 4/);
    expect(() => multiKrumRule(aggregation({ byzantine: 1, select: 4 })).combine(tooFew)).toThrow(/multi-krum needs at least 5/);
    expect(() => bulyanRule(aggregation({ byzantine: 1 })).combine(withOutlier(5).slice(0, 6))).toThrow(/bulyan needs at least 7/);
  });
});

describe('minimumUpdates and checkAggregation', () => {
  it('knows the fewest updates each rule is defined for', () => {
    expect(minimumUpdates(aggregation({ rule: 'mean', byzantine: 3 }))).toBe(1);
    expect(minimumUpdates(aggregation({ rule: 'median', byzantine: 3 }))).toBe(1);
    expect(minimumUpdates(aggregation({ rule: 'trimmed-mean', trim: 0.4 }))).toBe(1);
    expect(minimumUpdates(aggregation({ rule: 'centered-clipping', byzantine: 3 }))).toBe(1);
    expect(minimumUpdates(aggregation({ rule: 'krum', byzantine: 2 }))).toBe(7);
    expect(minimumUpdates(aggregation({ rule: 'multi-krum', byzantine: 2 }))).toBe(7);
    expect(minimumUpdates(aggregation({ rule: 'multi-krum', byzantine: 2, select: 8 }))).toBe(10);
    expect(minimumUpdates(aggregation({ rule: 'bulyan', byzantine: 2 }))).toBe(11);
  });

  it('accepts settings each rule can run with', () => {
    expect(() => checkAggregation(aggregation({ rule: 'trimmed-mean', trim: 0.49 }), 10)).not.toThrow();
    expect(() => checkAggregation(aggregation({ rule: 'krum', byzantine: 1 }), 5)).not.toThrow();
    expect(() => checkAggregation(aggregation({ rule: 'multi-krum', byzantine: 1, select: 4 }), 5)).not.toThrow();
    expect(() => checkAggregation(aggregation({ rule: 'bulyan', byzantine: 1 }), 7)).not.toThrow();
    expect(() => checkAggregation(aggregation({ rule: 'median', trim: 0.9, byzantine: 50 }), 3)).not.toThrow();
    expect(() => checkAggregation(TASK_DEFAULTS.aggregation, TASK_DEFAULTS.clientsPerRound)).not.toThrow();
  });

  it('refuses each bad configuration, naming it', () => {
    const refused = (a: Partial<Aggregation>, n: number, message: RegExp) => {
      expect(() => checkAggregation(aggregation(a), n)).toThrow(expect.objectContaining({ code: 'AGGREGATION_INVALID', message: expect.stringMatching(message) }));
    };
    refused({ rule: 'trimmed-mean', trim: 0.5 }, 10, /trim β = 0.5 must be at least 0 and below 0.5/);
    refused({ rule: 'trimmed-mean', trim: -0.1 }, 10, /trim β = -0.1/);
    refused({ rule: 'krum', byzantine: 2 }, 6, /krum: byzantine f = 2 is too many for 6 clients per round; it needs at least 2f \+ 3 = 7/);
    refused({ rule: 'multi-krum', byzantine: 2 }, 6, /multi-krum: byzantine f = 2 is too many/);
    refused({ rule: 'multi-krum', byzantine: 1, select: 5 }, 5, /select = 5 is more than n − f = 5 − 1 = 4/);
    refused({ rule: 'bulyan', byzantine: 1 }, 6, /bulyan: byzantine f = 1 is too many for 6 clients per round; it needs at least 4f \+ 3 = 7/);
  });
});
