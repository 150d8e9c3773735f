import { TributaryError } from '../../shared/errors.ts';
import { adaptiveClipNoise, calibrateGaussianNoise, calibrateSkellamVariance, gaussianEpsilon, skellamEpsilon } from '../../shared/privacy/accountant.ts';
import { distributedDpParams, type DistributedDpParams } from '../../shared/privacy/distributed.ts';
import { privacySampleRate, type PrivacyStatus, type TaskSpec } from '../../shared/protocol/task.ts';

/** Adaptive clipping's noise on the count of unclipped updates: m/20 (Andrew et al. 2021, §3.1). */
const COUNT_NOISE_PER_CLIENT = 1 / 20;

/** Budgets by spec: the API and the model card ask for them on every read. */
const budgets = new Map<string, PrivacyBudget>();
const MAX_CACHED_BUDGETS = 256;

/** Central DP: what the strategy wrapper needs. */
export interface CentralNoise {
  /** z_Δ on the update sum (all of z unless adaptive clipping takes a share). */
  updateNoiseMultiplier: number;
  /** σ_b on the clip count, with adaptive clipping. */
  countNoiseStd?: number;
}

/** Distributed DP: what the secure round config and the decoder need. */
export interface DistributedNoise {
  params: DistributedDpParams;
  /** σ²: the least Skellam variance the unmasked sum carries, in levels². */
  variance: number;
  /** L: devices whose noise adds up to σ²; each adds σ²/L, and no sum of fewer is unmasked. */
  minSurvivors: number;
}

/**
 * A differentially private task's budget: the noise its mechanism runs with (calibrated to
 * the target when the spec leaves z at 0), and the ε the accountant charges for any number
 * of rounds. User-level: adjacent datasets differ in all of one user's data, and the
 * guarantee covers every model the task publishes.
 */
export class PrivacyBudget {
  readonly sampleRate: number;
  /** z: noise std over sensitivity (distributed: σ / l2). */
  readonly noiseMultiplier: number;
  readonly central: CentralNoise | undefined;
  readonly distributed: DistributedNoise | undefined;
  private readonly spent = new Map<number, number>();

  private constructor(private readonly spec: TaskSpec, parameters: number) {
    const { privacy, rounds } = spec;
    this.sampleRate = privacySampleRate(spec);
    const q = this.sampleRate;
    const target = { q, steps: rounds, delta: privacy.delta, epsilon: privacy.epsilon };
    if (privacy.mode === 'distributed') {
      const params = distributedDpParams(parameters, spec.bits as 4 | 8 | 16, spec.clipSigma, privacy.clipNorm);
      const variance = privacy.noiseMultiplier > 0 ? (privacy.noiseMultiplier * params.l2) ** 2 : calibrateSkellamVariance({ ...target, l1: params.l1, l2: params.l2 });
      this.distributed = { params, variance, minSurvivors: Math.max(1, spec.minUpdates) };
      this.noiseMultiplier = Math.sqrt(variance) / params.l2;
      this.central = undefined;
    } else {
      this.noiseMultiplier = privacy.noiseMultiplier > 0 ? privacy.noiseMultiplier : calibrateGaussianNoise(target);
      const countNoiseStd = privacy.targetQuantile > 0 ? spec.clientsPerRound * COUNT_NOISE_PER_CLIENT : undefined;
      this.central = countNoiseStd === undefined
        ? { updateNoiseMultiplier: this.noiseMultiplier }
        : { updateNoiseMultiplier: adaptiveClipNoise(this.noiseMultiplier, countNoiseStd), countNoiseStd };
      this.distributed = undefined;
    }
    const first = this.epsilonAfter(1);
    if (first > privacy.epsilon) {
      throw new TributaryError('PRIVACY_INVALID', `one round at noise multiplier ${this.noiseMultiplier.toPrecision(3)} already spends ε = ${first.toPrecision(3)} > ${privacy.epsilon}`);
    }
  }

  /** The task's budget, or undefined when it is not differentially private. Throws PRIVACY_INVALID when it cannot be met. */
  static of(spec: TaskSpec, parameters: number): PrivacyBudget | undefined {
    if (spec.privacy.mode === 'off') return undefined;
    // Calibration searches the accountant (up to a few hundred ms): a spec's budget is made once, not per request.
    const key = JSON.stringify([spec, parameters]);
    let budget = budgets.get(key);
    if (!budget) {
      budget = new PrivacyBudget(spec, parameters);
      if (budgets.size >= MAX_CACHED_BUDGETS) budgets.delete(budgets.keys().next().value!);
      budgets.set(key, budget);
    }
    return budget;
  }

  /** ε after `rounds` rounds, at the task's δ. */
  epsilonAfter(rounds: number): number {
    if (rounds <= 0) return 0;
    const cached = this.spent.get(rounds);
    if (cached !== undefined) return cached;
    const { delta } = this.spec.privacy;
    const q = this.sampleRate;
    const d = this.distributed;
    const { epsilon } = d
      ? skellamEpsilon({ q, l1: d.params.l1, l2: d.params.l2, variance: d.variance, steps: rounds, delta })
      : gaussianEpsilon({ q, noiseMultiplier: this.noiseMultiplier, steps: rounds, delta });
    this.spent.set(rounds, epsilon);
    return epsilon;
  }

  /** Whether round `round` keeps the task within its target. */
  affords(round: number): boolean {
    return this.epsilonAfter(round) <= this.spec.privacy.epsilon;
  }

  /** The most rounds the target affords (at most the task's rounds). */
  affordableRounds(): number {
    let lo = 0;
    let hi = this.spec.rounds;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (this.affords(mid)) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  status(completedRounds: number): PrivacyStatus {
    const { privacy } = this.spec;
    return {
      mode: privacy.mode,
      epsilon: privacy.epsilon,
      delta: privacy.delta,
      spent: this.epsilonAfter(completedRounds),
      roundsLeft: Math.max(0, this.affordableRounds() - completedRounds),
      noiseMultiplier: this.noiseMultiplier,
      sampleRate: this.sampleRate,
      guarantee: this.guarantee(),
    };
  }

  /** The guarantee in words, for the dashboard and the model card. */
  guarantee(): string {
    const { privacy } = this.spec;
    const mechanism = privacy.mode === 'distributed'
      ? `each device clips its update to L2 norm ${privacy.clipNorm} and adds Skellam noise before secure aggregation (the sum's noise multiplier is ${this.noiseMultiplier.toFixed(3)}, counting rounding)`
      : `the server clips each update to L2 norm ${privacy.clipNorm}${privacy.targetQuantile > 0 ? ' (adapted to the ' + privacy.targetQuantile + ' quantile of update norms)' : ''} and adds Gaussian noise of std ${this.noiseMultiplier.toFixed(3)}·C to the sum`;
    return `(ε = ${privacy.epsilon}, δ = ${privacy.delta})-differential privacy at the user level (adjacent: one user's data present or absent) for every model the task publishes, over all its rounds: ${mechanism}; users take part in a round with probability q = ${this.sampleRate.toPrecision(3)} (Poisson sampling); ε composed with a Rényi-DP accountant (Mironov et al. 2019) and converted to (ε, δ) with the tight conversion.`;
  }
}
