import { TributaryError } from '../../shared/errors.ts';
import { parameterCount } from '../../shared/ml/models.ts';
import { bufferSizeOf, RULES_NEEDING_EVERY_UPDATE, type TaskSpec } from '../../shared/protocol/task.ts';
import { PrivacyBudget } from '../privacy/budget.ts';
import { checkAggregation } from './combine/index.ts';

/**
 * Refuses a task whose aggregation or privacy settings cannot hold, with the reason:
 * AGGREGATION_INVALID or PRIVACY_INVALID. Run when a task is created, before anything is stored.
 */
export async function checkStrategySettings(spec: TaskSpec): Promise<void> {
  const { aggregation, privacy } = spec;
  // An async step combines one buffer of updates: that is the n a rule must be defined for.
  checkAggregation(aggregation, spec.mode === 'async' ? bufferSizeOf(spec) : spec.clientsPerRound);
  if (spec.secure && RULES_NEEDING_EVERY_UPDATE.includes(aggregation.rule)) {
    throw new TributaryError('AGGREGATION_INVALID', `${aggregation.rule} reads every update, but in a secure round the server sees only their sum: use mean, with a norm bound (each device clips its own update before masking)`);
  }
  if (privacy.mode === 'off') return;
  if (!(privacy.epsilon > 0)) throw new TributaryError('PRIVACY_INVALID', `target ε must be positive, got ${privacy.epsilon}`);
  if (privacy.mode === 'central' && spec.secure) {
    throw new TributaryError('PRIVACY_INVALID', 'central DP adds noise on the server, which a secure task does not trust with a noiseless sum: use distributed DP');
  }
  if (privacy.mode === 'distributed' && !spec.secure) {
    throw new TributaryError('PRIVACY_INVALID', 'distributed DP adds noise on the devices under secure aggregation: turn on secure, or use central DP');
  }
  if (aggregation.rule !== 'mean') {
    throw new TributaryError('PRIVACY_INVALID', `the accountant counts the sensitivity of a sum of clipped updates: use the mean rule, not ${aggregation.rule}`);
  }
  if (spec.mode === 'async') throw new TributaryError('PRIVACY_INVALID', 'differential privacy needs sync rounds: Poisson-sampled cohorts are what the accountant counts');
  PrivacyBudget.of(spec, await parameterCount(spec.model, spec.data));
}
