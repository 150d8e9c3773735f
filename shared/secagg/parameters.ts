import { TributaryError } from '../errors.ts';
import { defaultNeighbourCount } from './neighbours.ts';
import { MAX_SHARES } from './shamir.ts';

/** How many neighbours, shares and signatures a secure round needs to be safe: the rules both sides enforce. */

/**
 * The smallest safe threshold for a secret held by `holders` clients: 2t > holders. Every
 * honest holder reveals a given owner's self-seed share or its mask-key share, never both;
 * a server showing two groups of holders different survivor lists can rebuild both secrets
 * (and so the owner's input) only if two disjoint groups of t holders exist. (docs/design.md,
 * "Threat model".)
 */
export function safeThreshold(holders: number): number {
  return Math.max(2, Math.floor(holders / 2) + 1);
}

/** Refuses a threshold below the safe bound, naming it. */
export function checkThreshold(threshold: number, neighbours: number): void {
  const holders = neighbours + 1;
  const least = safeThreshold(holders);
  if (threshold < least) {
    throw new TributaryError('SECAGG_THRESHOLD_UNSAFE', `threshold ${threshold} with ${neighbours} neighbours (${holders} holders per secret): 2t > k + 1 needs t ≥ ${least}`);
  }
}

/**
 * Signatures on one survivor list a client needs before it reveals anything: more than half
 * of the round's participants (and at least t). Each honest client signs one list, so no two
 * lists can both reach this quorum: every revealing client acts on the same list.
 */
export function consistencyQuorum(participants: number, threshold: number): number {
  return Math.max(threshold, Math.floor(participants / 2) + 1);
}

/**
 * k and t for n participants: the task's choice, or ≈ 2·log2 n neighbours and the smallest
 * safe threshold, a majority of each secret's k + 1 holders (tolerates just under half of a
 * neighbourhood vanishing). A threshold below the safe bound is refused.
 */
export function secureParameters(n: number, neighbours: number, threshold: number): { neighbours: number; threshold: number } {
  if (n < 3) throw new TributaryError('SECAGG_TOO_FEW_SHARES', `secure aggregation needs at least 3 participants, got ${n}`);
  const k = Math.min(neighbours > 0 ? neighbours : defaultNeighbourCount(n), n - 1);
  const holders = k + 1;
  if (holders > MAX_SHARES) {
    throw new TributaryError('BAD_REQUEST', `${k} neighbours: GF(256) Shamir allows ${MAX_SHARES} holders per secret, so at most ${MAX_SHARES - 1} neighbours`);
  }
  const t = threshold > 0 ? threshold : safeThreshold(holders);
  if (t > holders) throw new TributaryError('SECAGG_TOO_FEW_SHARES', `threshold ${t} exceeds the ${holders} holders of each secret`);
  checkThreshold(t, k);
  return { neighbours: k, threshold: t };
}
