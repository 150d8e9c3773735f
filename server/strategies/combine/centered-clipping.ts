import { TributaryError } from '../../../shared/errors.ts';
import type { Weights } from '../../../shared/ml/aggregate.ts';
import type { Aggregation } from '../../../shared/protocol/task.ts';
import type { CombineRule } from '../strategy.ts';
import { checkBatch, copyWeights } from './batch.ts';

/** The median of a few numbers (the mean of the middle two for an even count). */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Centered clipping (Karimireddy, He & Jaggi 2021, "Learning from History for Byzantine
 * Robust Optimization"): starting from the last round's step v (zeros before the first),
 * L times v ← v + (1/n) Σᵢ clip_τ(xᵢ − v), clip_τ(y) = y · min(1, τ/‖y‖). An update far from
 * the centre counts with length τ, however far it is: it is down-weighted, never dropped.
 * Unweighted, as in the paper.
 *
 * τ = aggregation.radius; 0 picks an adaptive radius instead: at each iteration, the median
 * of the round's distances ‖xᵢ − v‖ to the current centre, so at most half the updates are
 * clipped and the radius follows the honest updates' spread, whatever scale the model's
 * steps have (the paper's fixed τ has to be tuned to it).
 *
 * Memory: the centre, which is the step it returned. Iterations run in float64 and the step
 * is rounded to float32 once; that float32 step is both what `state()` checkpoints and where
 * the next round starts, so a restored rule continues bit for bit.
 */
export function centeredClippingRule(aggregation: Aggregation): CombineRule {
  let last: Weights = [];

  return {
    name: 'centered-clipping',
    combine(updates) {
      const batch = checkBatch('centered-clipping', updates, 1);
      const shape = batch[0]!.delta;
      if (last.length > 0 && (last.length !== shape.length || last.some((t, i) => t.length !== shape[i]!.length))) {
        throw new TributaryError('UPDATE_WRONG_LENGTH', 'centered-clipping: the updates differ in shape from the last step');
      }
      const v = shape.map((t, i) => (last.length > 0 ? Float64Array.from(last[i]!) : new Float64Array(t.length)));
      const n = batch.length;
      for (let iteration = 0; iteration < aggregation.iterations; iteration++) {
        const distances = batch.map((u) => {
          let sum = 0;
          u.delta.forEach((x, t) => {
            const c = v[t]!;
            for (let i = 0; i < x.length; i++) sum += (x[i]! - c[i]!) ** 2;
          });
          return Math.sqrt(sum);
        });
        const radius = aggregation.radius > 0 ? aggregation.radius : median(distances);
        const moved = v.map((c) => new Float64Array(c.length));
        batch.forEach((u, k) => {
          const distance = distances[k]!;
          // ‖y‖ ≤ τ (y = 0 included) keeps y whole; τ = 0 with every update elsewhere moves nothing.
          const scale = (distance <= radius ? 1 : radius / distance) / n;
          if (scale === 0) return;
          u.delta.forEach((x, t) => {
            const c = v[t]!;
            const m = moved[t]!;
            for (let i = 0; i < x.length; i++) m[i] = m[i]! + scale * (x[i]! - c[i]!);
          });
        });
        v.forEach((c, t) => {
          const m = moved[t]!;
          for (let i = 0; i < c.length; i++) c[i] = c[i]! + m[i]!;
        });
      }
      last = v.map((c) => Float32Array.from(c));
      return { delta: copyWeights(last), discarded: [] };
    },
    state: () => copyWeights(last),
    restore(state) {
      for (const t of state) {
        for (let i = 0; i < t.length; i++) {
          if (!Number.isFinite(t[i]!)) throw new TributaryError('INTERNAL', 'centered-clipping: the checkpointed step is not finite');
        }
      }
      last = copyWeights(state);
    },
  };
}
