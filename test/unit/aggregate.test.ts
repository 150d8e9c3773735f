import { describe, expect, it } from 'vitest';
import { addWeights, countParameters, discountForStaleness, stalenessWeight, subtractWeights, weightedMean } from '../../shared/ml/aggregate.ts';

const f = (...values: number[]) => Float32Array.from(values);

describe('weightedMean', () => {
  it('matches a hand-computed weighted average', () => {
    const mean = weightedMean([
      { delta: [f(1, 2), f(10)], weight: 1 },
      { delta: [f(3, -2), f(20)], weight: 3 },
    ]);
    // (1·1 + 3·3)/4 = 2.5, (1·2 + 3·−2)/4 = −1, (10 + 60)/4 = 17.5
    expect(mean).toEqual([f(2.5, -1), f(17.5)]);
  });

  it('ignores zero-weight updates', () => {
    expect(weightedMean([{ delta: [f(4)], weight: 2 }, { delta: [f(1000)], weight: 0 }])).toEqual([f(4)]);
  });

  it('accumulates in float64 so many small updates do not lose precision', () => {
    const updates = Array.from({ length: 1000 }, (_, i) => ({ delta: [f(i % 2 === 0 ? 1e8 : 1e8 + 8)], weight: 1 }));
    expect(weightedMean(updates)[0]![0]).toBe(Math.fround(1e8 + 4));
  });

  it('rejects empty input, bad weights and mismatched shapes with BAD_REQUEST', () => {
    const bad = expect.objectContaining({ code: 'BAD_REQUEST' });
    expect(() => weightedMean([])).toThrow(bad);
    expect(() => weightedMean([{ delta: [f(1)], weight: 0 }])).toThrow(bad);
    expect(() => weightedMean([{ delta: [f(1)], weight: NaN }])).toThrow(bad);
    expect(() => weightedMean([{ delta: [f(1)], weight: Infinity }])).toThrow(bad);
    expect(() => weightedMean([{ delta: [f(1)], weight: 2 }, { delta: [f(1)], weight: -1 }])).toThrow(bad);
    expect(() => weightedMean([{ delta: [f(1, 2)], weight: 1 }, { delta: [f(1)], weight: 1 }])).toThrow(bad);
    expect(() => weightedMean([{ delta: [f(1)], weight: 1 }, { delta: [f(1), f(2)], weight: 1 }])).toThrow(bad);
  });
});

describe('weight arithmetic', () => {
  it('adds a scaled delta into new arrays', () => {
    const a = [f(1, 2), f(3)];
    const b = [f(10, 20), f(30)];
    const sum = addWeights(a, b, 0.5);
    expect(sum).toEqual([f(6, 12), f(18)]);
    expect(sum[0]).not.toBe(a[0]);
    expect(a).toEqual([f(1, 2), f(3)]);
    expect(addWeights(a, b)).toEqual([f(11, 22), f(33)]);
  });

  it('subtracts into new arrays', () => {
    expect(subtractWeights([f(5, 5)], [f(1, 7)])).toEqual([f(4, -2)]);
  });

  it('rejects mismatched shapes', () => {
    expect(() => addWeights([f(1)], [f(1, 2)])).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
    expect(() => subtractWeights([f(1)], [])).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
  });

  it('counts parameters across tensors', () => {
    expect(countParameters([f(1, 2, 3), f(), f(4)])).toBe(4);
    expect(countParameters([])).toBe(0);
  });
});

describe('FedBuff staleness weighting', () => {
  it('discounts by 1/√(1 + τ)', () => {
    expect(stalenessWeight(0)).toBe(1);
    expect(stalenessWeight(3)).toBeCloseTo(0.5, 12);
    expect(() => stalenessWeight(-1)).toThrow();
  });

  it('averages by samples × discount over all samples: a hand-computed buffer', () => {
    // Δ = 1 (100 samples, fresh) and Δ = 4 (300 samples, 3 versions behind, weight ½):
    // (100·1·1 + 300·½·4) / (100 + 300) = (100 + 600) / 400 = 1.75.
    const mean = weightedMean([
      { delta: [Float32Array.of(1)], samples: 100, staleness: 0 },
      { delta: [Float32Array.of(4)], samples: 300, staleness: 3 },
    ].map(discountForStaleness));
    expect(mean[0]![0]).toBeCloseTo(1.75, 6);
  });

  it('is FedAvg when nothing is stale', () => {
    const updates = [
      { delta: [Float32Array.of(1, 2)], samples: 1, staleness: 0 },
      { delta: [Float32Array.of(3, -2)], samples: 3, staleness: 0 },
    ];
    expect(weightedMean(updates.map(discountForStaleness))).toEqual(weightedMean(updates.map((u) => ({ delta: u.delta, weight: u.samples }))));
  });
});
