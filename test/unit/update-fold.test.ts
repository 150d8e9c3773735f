import { describe, expect, it } from 'vitest';
import { checkAggregation, createCombineRule, MAX_HELD_UPDATES } from '../../server/strategies/combine/index.ts';
import { composeStrategy } from '../../server/strategies/compose.ts';
import { fedAvg } from '../../server/strategies/optimizers/fedavg.ts';
import type { ClientUpdate, Strategy } from '../../server/strategies/strategy.ts';
import { withCentralDp } from '../../server/strategies/wrappers/central-dp.ts';
import { withNormBound } from '../../server/strategies/wrappers/norm-bound.ts';
import { decodeUpdate, encodeUpdate } from '../../shared/codec/update-codec.ts';
import { TributaryError } from '../../shared/errors.ts';
import type { Weights } from '../../shared/ml/aggregate.ts';
import { TASK_DEFAULTS, type Aggregation, type CombineRuleName } from '../../shared/protocol/task.ts';
import { createRng } from '../../shared/random.ts';

/**
 * Streaming rounds fold each update into a running sum as it arrives instead of keeping
 * all n. A strategy's fold must give the step its `combine` gives for the same updates:
 * the mean, the mean of norm-bounded updates, central DP's clipped, noised sum over m.
 */

const LENGTHS = [5, 3];
const decodedOf = (bytes: Uint8Array) => decodeUpdate(bytes, LENGTHS, 8);
const aggregation = (over: Partial<Aggregation> = {}): Aggregation => ({ ...TASK_DEFAULTS.aggregation, ...over });
const base = (rule: Partial<Aggregation> = {}): Strategy => composeStrategy(createCombineRule(aggregation(rule)), fedAvg());

function updates(seed: number, n: number): ClientUpdate[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, (_, i) => ({
    clientId: `c${i}`,
    delta: LENGTHS.map((l) => Float32Array.from({ length: l }, () => (rng.next() - 0.5) * 4)),
    weight: 1 + Math.floor(rng.next() * 50),
  }));
}

function folded(strategy: Strategy, list: readonly ClientUpdate[]): Weights {
  const fold = strategy.fold(LENGTHS, 1);
  if (!fold) throw new Error('expected a fold');
  for (const u of list) fold.add(u);
  expect(fold.count).toBe(list.length);
  return fold.finish().delta;
}

function expectClose(actual: Weights, expected: Weights): void {
  expect(actual.map((t) => t.length)).toEqual(expected.map((t) => t.length));
  actual.forEach((t, i) => t.forEach((v, j) => expect(v, `tensor ${i} value ${j}`).toBeCloseTo(expected[i]![j]!, 6)));
}

describe('streaming folds', () => {
  it('the mean: folding equals combining, and a wire-encoded fold equals folding the decoded update', () => {
    const list = updates(1, 7);
    expectClose(folded(base(), list), base().combine(list, 1).delta);
    const fold = base().fold(LENGTHS, 1)!;
    const viaDecoded = base().fold(LENGTHS, 1)!;
    const rng = createRng(9);
    for (const u of list) {
      const bytes = encodeUpdate(u.delta, { bits: 8, clipSigma: Infinity, rng });
      fold.addEncoded!(bytes, 8, u.weight);
      viaDecoded.add({ ...u, delta: decodedOf(bytes) });
    }
    expect(fold.finish().delta).toEqual(viaDecoded.finish().delta);
  });

  it('norm bounding clips each update before it is folded, so it cannot take encoded updates', () => {
    const list = updates(2, 5);
    const strategy = withNormBound(base(), 0.5);
    expectClose(folded(strategy, list), strategy.combine(list, 1).delta);
    expect(strategy.fold(LENGTHS, 1)!.addEncoded).toBeUndefined();
  });

  it('central DP: the folded sum clipped, noised and divided by m as combine does, with the same draws and the same adaptive clip', () => {
    const list = updates(3, 6);
    const options = { clipNorm: 1, updateNoiseMultiplier: 1.5, expectedClients: 8, adaptive: { targetQuantile: 0.5, countNoiseStd: 0.3 } };
    const viaFold = withCentralDp(base(), { ...options, rng: createRng(4) });
    const viaCombine = withCentralDp(base(), { ...options, rng: createRng(4) });
    for (let round = 1; round <= 3; round++) {
      expectClose(folded(viaFold, list), viaCombine.combine(list, round).delta);
      expect(viaFold.report().clipNorm).toBe(viaCombine.report().clipNorm);
    }
    expect(viaFold.state()).toEqual(viaCombine.state());
  });

  it('central DP: a fold opened before the last one finished (async steps) clips and counts on its own', () => {
    const list = updates(5, 4);
    const options = { clipNorm: 3.3, updateNoiseMultiplier: 0, expectedClients: 4, adaptive: { targetQuantile: 0.5, countNoiseStd: 0 } }; // the updates' norms are 2.2–3.1: none is clipped, so the counts steer the clip
    const strategy = (seed: number) => withCentralDp(base(), { ...options, rng: createRng(seed) });
    const overlapping = strategy(6);
    const first = overlapping.fold(LENGTHS, 1)!;
    for (const u of list) first.add(u);
    const second = overlapping.fold(LENGTHS, 2)!; // opened while the first is still to be applied
    for (const u of list.slice(0, 2)) second.add(u);
    // The first step adapts the clip from its own four updates, as it would alone.
    const alone = strategy(6);
    expectClose(first.finish().delta, folded(alone, list));
    expect(overlapping.state()).toEqual(alone.state());
    // The second clipped at the clip it opened with (3.3), not the adapted one.
    expectClose(second.finish().delta, folded(strategy(6), list.slice(0, 2)));
  });

  it.each<CombineRuleName>(['median', 'trimmed-mean', 'krum', 'multi-krum', 'bulyan', 'centered-clipping'])('%s needs every update: no fold, and at most MAX_HELD_UPDATES per round', (rule) => {
    expect(base({ rule }).fold(LENGTHS, 1)).toBeUndefined();
    expect(() => checkAggregation(aggregation({ rule, byzantine: 1 }), MAX_HELD_UPDATES + 1)).toThrow(TributaryError);
    expect(() => checkAggregation(aggregation({ rule, byzantine: 1 }), MAX_HELD_UPDATES)).not.toThrow();
  });

  it('the mean takes any cohort up to the schema limit', () => {
    expect(() => checkAggregation(aggregation(), 10_000)).not.toThrow();
  });
});
