import { TributaryError, type ErrorCode } from '../../../shared/errors.ts';
import type { Aggregation, CombineRuleName } from '../../../shared/protocol/task.ts';
import type { CombineRule } from '../strategy.ts';
import { bulyanMinimum, bulyanRule } from './bulyan.ts';
import { centeredClippingRule } from './centered-clipping.ts';
import { krumMinimum, krumRule, multiKrumMinimum, multiKrumRule } from './krum.ts';
import { meanRule } from './mean.ts';
import { medianRule } from './median.ts';
import { trimmedMeanRule } from './trimmed-mean.ts';

/** The code a task's aggregation settings are refused with. */
const INVALID: ErrorCode = 'AGGREGATION_INVALID';

/**
 * Most updates per round a rule without a streaming fold may take: it holds every update
 * until the round closes (n · m floats: 1,000 × 199,210 parameters is 800 MB).
 */
export const MAX_HELD_UPDATES = 1_000;

const factories: Record<CombineRuleName, (a: Aggregation) => CombineRule> = {
  mean: meanRule,
  median: medianRule,
  'trimmed-mean': trimmedMeanRule,
  krum: krumRule,
  'multi-krum': multiKrumRule,
  bulyan: bulyanRule,
  'centered-clipping': centeredClippingRule,
};

export function createCombineRule(aggregation: Aggregation): CombineRule {
  return factories[aggregation.rule](aggregation);
}

/**
 * The fewest updates a round needs for its rule to be defined; fewer and `combine` throws.
 * Krum and Multi-Krum: 2f + 3 (n > 2f + 2), Multi-Krum also `select` + f; Bulyan: 4f + 3.
 * Trimmed mean: 1, since β < 0.5 gives 2⌊βn⌋ < n for every n (but a round of fewer than
 * 1/β updates trims nothing). Mean, median, centered clipping: 1.
 */
export function minimumUpdates(aggregation: Aggregation): number {
  const f = aggregation.byzantine;
  switch (aggregation.rule) {
    case 'krum':
      return krumMinimum(f);
    case 'multi-krum':
      return multiKrumMinimum(f, aggregation.select);
    case 'bulyan':
      return bulyanMinimum(f);
    case 'mean':
    case 'median':
    case 'trimmed-mean':
    case 'centered-clipping':
      return 1;
  }
}

/**
 * Refuses aggregation settings the rule cannot run with when a full round has
 * `clientsPerRound` updates. Only the fields the rule reads are checked: a median task's
 * unused `trim` is left alone.
 */
export function checkAggregation(aggregation: Aggregation, clientsPerRound: number): void {
  const { rule, trim, byzantine: f, select } = aggregation;
  const n = clientsPerRound;
  if (rule === 'trimmed-mean' && !(trim >= 0 && trim < 0.5)) {
    throw new TributaryError(INVALID, `trimmed-mean: trim β = ${trim} must be at least 0 and below 0.5 (it drops ⌊β·n⌋ values from each end)`);
  }
  if (n > MAX_HELD_UPDATES && !createCombineRule(aggregation).fold) {
    throw new TributaryError(INVALID, `${rule} needs every update of a round in memory at once: at most ${MAX_HELD_UPDATES} clients per round, got ${n} (the mean streams, with no such limit)`);
  }
  const need = minimumUpdates(aggregation);
  if (rule === 'multi-krum' && select > 0 && select > n - f) {
    throw new TributaryError(INVALID, `multi-krum: select = ${select} is more than n − f = ${n} − ${f} = ${n - f} (clientsPerRound minus byzantine)`);
  }
  if (n >= need) return;
  if (rule === 'krum' || rule === 'multi-krum' || rule === 'bulyan') {
    const bound = rule === 'bulyan' ? '4f + 3' : '2f + 3';
    throw new TributaryError(INVALID, `${rule}: byzantine f = ${f} is too many for ${n} clients per round; it needs at least ${bound} = ${need}`);
  }
  throw new TributaryError(INVALID, `${rule} needs at least ${need} client per round, got ${n}`);
}
