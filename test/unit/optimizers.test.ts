import { describe, expect, it } from 'vitest';
import { fedAdam } from '../../server/strategies/optimizers/fedadam.ts';
import { fedAvg } from '../../server/strategies/optimizers/fedavg.ts';
import { fedAvgM } from '../../server/strategies/optimizers/fedavgm.ts';
import { fedYogi } from '../../server/strategies/optimizers/fedyogi.ts';
import type { ServerOptimizer } from '../../server/strategies/strategy.ts';
import type { Weights } from '../../shared/ml/aggregate.ts';

/** Two rounds from x = 1 with mean updates +0.1 then −0.05, against values worked out by hand. */
async function twoRounds(strategy: ServerOptimizer): Promise<[number, number]> {
  const x1 = await strategy.step([Float32Array.of(1)], [Float32Array.of(0.1)], 1);
  const x2 = await strategy.step(x1, [Float32Array.of(-0.05)], 2);
  return [x1[0]![0]!, x2[0]![0]!];
}

describe('server optimizers against hand-computed steps', () => {
  it('FedAvg adds the mean update', async () => {
    const [x1, x2] = await twoRounds(fedAvg());
    expect(x1).toBeCloseTo(1.1, 6);
    expect(x2).toBeCloseTo(1.05, 6);
  });

  it('FedAvgM: v ← βv + Δ, x ← x + ηv', async () => {
    // η = 1, β = 0.5: v1 = 0.1, x1 = 1.1; v2 = 0.05 − 0.05 = 0, x2 = 1.1.
    const [x1, x2] = await twoRounds(fedAvgM({ learningRate: 1, momentum: 0.5 }));
    expect(x1).toBeCloseTo(1.1, 6);
    expect(x2).toBeCloseTo(1.1, 6);
  });

  it('FedAdam: v ← β2 v + (1 − β2) Δ²', async () => {
    // η = 0.01, β1 = 0.9, β2 = 0.99, τ = 10⁻³, v0 = τ² = 10⁻⁶.
    // Round 1: m = 0.01, v = 0.99·10⁻⁶ + 0.01·0.01 = 1.0099·10⁻⁴, x = 1 + 0.01·0.01/(√v + τ) = 1.0090503.
    // Round 2: m = 0.009 − 0.005 = 0.004, v = 0.99·1.0099·10⁻⁴ + 0.01·0.0025 = 1.249801·10⁻⁴,
    //          x = 1.0090503 + 0.01·0.004/(√v + τ) = 1.0123345.
    const [x1, x2] = await twoRounds(fedAdam());
    expect(x1).toBeCloseTo(1.0090503, 6);
    expect(x2).toBeCloseTo(1.0123345, 6);
  });

  it('FedYogi: v ← v − (1 − β2) Δ² sign(v − Δ²)', async () => {
    // Round 1: Δ² = 0.01 > v0, so v = 10⁻⁶ + 0.01·0.01 = 1.01·10⁻⁴, x = 1 + 10⁻⁴/(√v + τ) = 1.0090499.
    // Round 2: Δ² = 0.0025 > v, so v = 1.01·10⁻⁴ + 0.01·0.0025 = 1.26·10⁻⁴, x = x1 + 4·10⁻⁵/(√v + τ) = 1.0123219.
    const [x1, x2] = await twoRounds(fedYogi());
    expect(x1).toBeCloseTo(1.0090499, 6);
    expect(x2).toBeCloseTo(1.0123219, 6);
  });

  it('Adam and Yogi differ once v exceeds Δ²: Yogi shrinks v additively, Adam geometrically', async () => {
    const adam = fedAdam();
    const yogi = fedYogi();
    let xa: Weights = [Float32Array.of(0)];
    let xy: Weights = [Float32Array.of(0)];
    for (const d of [1, 0.01, 0.01]) {
      xa = await adam.step(xa, [Float32Array.of(d)], 0);
      xy = await yogi.step(xy, [Float32Array.of(d)], 0);
    }
    expect(xa[0]![0]).not.toBeCloseTo(xy[0]![0]!, 4);
  });

  it.each([['fedavgm', fedAvgM], ['fedadam', fedAdam], ['fedyogi', fedYogi]] as const)(
    '%s restored from its saved state takes the same next step as the original',
    async (_name, make) => {
      const original = make();
      const x1 = await original.step([Float32Array.of(1, 2)], [Float32Array.of(0.1, -0.2)], 1);
      const restored = make();
      restored.restore(original.state().map((t) => t.slice()));
      const next = [Float32Array.of(-0.05, 0.3)];
      const a = await original.step(x1, next, 2);
      const b = await restored.step(x1, next, 2);
      expect(b).toEqual(a);
      // Without the state the step differs: the test would catch a state that is not restored.
      expect(await make().step(x1, next, 2)).not.toEqual(a);
    },
  );
});
