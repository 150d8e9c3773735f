import { TributaryError } from '../../shared/errors.ts';
import type { Rng } from '../../shared/random.ts';
import type { StrategyName, TaskSpec } from '../../shared/protocol/task.ts';
import { cryptoRng } from '../../shared/privacy/noise.ts';
import type { PrivacyBudget } from '../privacy/budget.ts';
import { createCombineRule } from './combine/index.ts';
import { composeStrategy } from './compose.ts';
import { fedAdam } from './optimizers/fedadam.ts';
import { fedAvg } from './optimizers/fedavg.ts';
import { fedAvgM } from './optimizers/fedavgm.ts';
import { fedYogi } from './optimizers/fedyogi.ts';
import type { ServerOptimizer, Strategy } from './strategy.ts';
import { withCentralDp } from './wrappers/central-dp.ts';
import { withNormBound } from './wrappers/norm-bound.ts';

const optimizers: Record<StrategyName, () => ServerOptimizer> = {
  fedavg: fedAvg,
  fedavgm: () => fedAvgM(),
  fedadam: () => fedAdam(),
  fedyogi: () => fedYogi(),
};

export function createOptimizer(name: StrategyName): ServerOptimizer {
  return optimizers[name]();
}

export interface StrategyContext {
  /** A central-DP task's calibrated noise (server/privacy/budget.ts). */
  budget?: PrivacyBudget | undefined;
  /** Where DP noise comes from: a CSPRNG unless a test passes a seeded one. */
  rng?: Rng;
}

/**
 * A task's strategy: its combine rule and server optimizer, wrapped in norm bounding (plain
 * rounds: a secure round's devices bound their own inputs) and central DP where it asks.
 */
export function createStrategy(spec: TaskSpec, context: StrategyContext = {}): Strategy {
  let strategy = composeStrategy(createCombineRule(spec.aggregation), createOptimizer(spec.strategy));
  if (spec.aggregation.normBound > 0 && !spec.secure) strategy = withNormBound(strategy, spec.aggregation.normBound);
  if (spec.privacy.mode === 'central') {
    const central = context.budget?.central;
    // Never fail open: a central-DP task without its calibrated noise must not run at all.
    if (!central) throw new TributaryError('INTERNAL', 'a central-DP strategy needs its privacy budget');
    strategy = withCentralDp(strategy, {
      clipNorm: spec.privacy.clipNorm,
      updateNoiseMultiplier: central.updateNoiseMultiplier,
      expectedClients: spec.clientsPerRound,
      ...(central.countNoiseStd !== undefined ? { adaptive: { targetQuantile: spec.privacy.targetQuantile, countNoiseStd: central.countNoiseStd } } : {}),
      rng: context.rng ?? cryptoRng(),
    });
  }
  return strategy;
}
