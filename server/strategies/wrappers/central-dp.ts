import { clipToNorm } from '../../../shared/ml/norms.ts';
import { addGaussianNoise } from '../../../shared/privacy/noise.ts';
import type { Rng } from '../../../shared/random.ts';
import { packStates, unpackStates } from '../compose.ts';
import type { ClientUpdate, Combined, Strategy } from '../strategy.ts';

/** Adaptive clipping's geometric step η_C (Andrew et al. 2021, §3: 0.2 works across their tasks). */
const CLIP_LEARNING_RATE = 0.2;

export interface CentralDpOptions {
  /** C at the first round. */
  clipNorm: number;
  /** z_Δ: the update sum's noise std over C (with adaptive clipping, what is left of z after the clip count's share). */
  updateNoiseMultiplier: number;
  /** m: the expected clients per round. The sum is divided by it, not by who came: a fixed denominator keeps the sensitivity C/m. */
  expectedClients: number;
  /** Adaptive clipping: the quantile of update norms C tracks, and the noise std on the count of unclipped updates. */
  adaptive?: { targetQuantile: number; countNoiseStd: number };
  /** DP noise must come from a CSPRNG in production (cryptoRng); tests pass a seeded one. */
  rng: Rng;
}

/**
 * DP-FedAvg (McMahan et al. 2018): each update clipped to L2 norm C, summed with equal
 * weight (sample counts would make one user's influence unbounded), Gaussian noise of std
 * z·C added to the sum, divided by the expected cohort m. With a target quantile γ, C
 * follows the updates (Andrew et al. 2021): b̃ = (#{‖Δ‖ ≤ C} + N(0, σ_b²)) / m and
 * C ← C·exp(−η_C (b̃ − γ)); the count is noised too, and the accountant charges for it.
 */
export function withCentralDp(inner: Strategy, options: CentralDpOptions): Strategy {
  const { updateNoiseMultiplier: z, expectedClients: m, adaptive, rng } = options;
  let clip = Math.fround(options.clipNorm);
  /** The clip the last combined step used, for its report. */
  let clipReported = clip;
  /** One step's clipping: at the clip current when it began, counting the updates it left alone. */
  const clipping = () => {
    const at = clip;
    let unclipped = 0;
    return {
      clip: (u: ClientUpdate): ClientUpdate => {
        const c = clipToNorm(u.delta, at);
        if (!c.scaled) unclipped++;
        return { ...u, delta: c.clipped, weight: 1 };
      },
      // The inner rule is the mean (checked when the task is created): × n/m turns it into sum/m.
      privatize: (combined: Combined, n: number): Combined => {
        clipReported = at;
        const scale = n / m;
        const delta = combined.delta.map((t) => {
          const out = new Float32Array(t.length);
          for (let i = 0; i < t.length; i++) out[i] = t[i]! * scale;
          addGaussianNoise(out, (z * at) / m, rng);
          return out;
        });
        if (adaptive) {
          const count = unclipped + gaussian(adaptive.countNoiseStd, rng);
          clip = Math.fround(clip * Math.exp(-CLIP_LEARNING_RATE * (count / m - adaptive.targetQuantile)));
        }
        return { delta, discarded: combined.discarded };
      },
    };
  };
  return {
    ...inner,
    combine(updates, round) {
      const step = clipping();
      return step.privatize(inner.combine(updates.map(step.clip), round), updates.length);
    },
    // Each fold clips on its own: an async task opens the next step's fold before the last one is applied.
    fold(lengths, round) {
      const fold = inner.fold(lengths, round);
      if (!fold) return undefined;
      const step = clipping();
      return {
        add: (u) => fold.add(step.clip(u)),
        addEncoded: undefined, // clipping needs the decoded update's norm
        get count() {
          return fold.count;
        },
        finish: () => step.privatize(fold.finish(), fold.count),
      };
    },
    report: () => {
      const r = inner.report();
      return { ...r, combine: `dp-central(${r.combine})`, clipNorm: clipReported };
    },
    state: () => packStates([inner.state(), [Float32Array.of(clip)]]),
    restore(state) {
      const parts = unpackStates(state, 2);
      if (!parts) return;
      inner.restore(parts[0]!);
      const saved = parts[1]![0]?.[0];
      if (saved !== undefined && saved > 0) clip = saved;
    },
  };
}

function gaussian(std: number, rng: Rng): number {
  const one = new Float64Array(1);
  addGaussianNoise(one, std, rng);
  return one[0]!;
}
