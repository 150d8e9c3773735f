import { clipToNorm } from '../../../shared/ml/norms.ts';
import type { Strategy } from '../strategy.ts';

/**
 * Norm bounding (Sun et al. 2019, "Can You Really Backdoor Federated Learning?"): every
 * update is scaled onto an L2 ball of radius `bound` before the inner strategy combines
 * it, so no single client moves the model further than that. Secure rounds do the same on
 * the device, before masking (client/round-runner.ts), since the server sees only the sum.
 */
export function withNormBound(inner: Strategy, bound: number): Strategy {
  return {
    ...inner,
    combine: (updates, round) => inner.combine(updates.map((u) => ({ ...u, delta: clipToNorm(u.delta, bound).clipped })), round),
    fold(lengths, round) {
      const fold = inner.fold(lengths, round);
      return fold && {
        add: (u) => fold.add({ ...u, delta: clipToNorm(u.delta, bound).clipped }),
        addEncoded: undefined, // clipping needs the decoded update's norm
        get count() {
          return fold.count;
        },
        finish: () => fold.finish(),
      };
    },
    report: () => {
      const r = inner.report();
      return { ...r, combine: `norm-bound(${r.combine})` };
    },
  };
}
