import { TributaryError } from '../errors.ts';
import { combineShares } from './shamir.ts';

/** A revealed share and the participant that revealed it. */
export interface HeldShare {
  from: number;
  share: Uint8Array;
}

/** Subsets tried before a secret is given up on: one forged share among t + 1 costs t + 1 tries. */
const MAX_ATTEMPTS = 512;

async function combined(shares: readonly HeldShare[]): Promise<Uint8Array | undefined> {
  try {
    return await combineShares(shares.map((s) => s.share));
  } catch {
    return undefined; // malformed or clashing shares: not this subset
  }
}

/** The t-subsets of `shares` that leave out e of the first t + e, for e = 1, 2, …, at most MAX_ATTEMPTS in all. */
function* fallbackSubsets(shares: readonly HeldShare[], t: number): Generator<HeldShare[]> {
  let attempts = 0;
  for (let e = 1; t + e <= shares.length; e++) {
    const pool = shares.slice(0, t + e);
    const out = Array.from({ length: e }, (_, i) => i); // indices left out, ascending
    for (;;) {
      if (++attempts > MAX_ATTEMPTS) return;
      yield pool.filter((_, i) => !out.includes(i));
      let i = e - 1;
      while (i >= 0 && out[i] === pool.length - e + i) i--;
      if (i < 0) break;
      out[i]!++;
      for (let j = i + 1; j < e; j++) out[j] = out[j - 1]! + 1;
    }
  }
}

/**
 * Rebuilds a secret from revealed shares that may include forgeries, checked by `verify`
 * against what its owner published. The first t shares almost always do; if not, other
 * t-subsets are tried until one verifies, and every other share is then tested by swapping
 * it in: any t points of the polynomial give the same secret, and in GF(256) every point's
 * Lagrange weight at 0 is nonzero, so a share off the polynomial always changes the result.
 * Returns the secret and who revealed a share that makes it fail `verify`.
 */
export async function recoverSecret(shares: readonly HeldShare[], t: number, verify: (secret: Uint8Array) => boolean, what: string): Promise<{ secret: Uint8Array; forgers: number[] }> {
  if (shares.length < t) throw new TributaryError('SECAGG_TOO_FEW_SHARES', `${shares.length} of ${t} shares for ${what}`);
  const first = await combined(shares.slice(0, t));
  if (first && verify(first)) return { secret: first, forgers: [] };
  for (const subset of fallbackSubsets(shares, t)) {
    const secret = await combined(subset);
    if (!secret || !verify(secret)) continue;
    const forgers: number[] = [];
    const rest = subset.slice(1);
    for (const s of shares) {
      if (subset.includes(s)) continue;
      // Judged by `verify`, not by equal bytes: an X25519 key ignores some of its bits, and a
      // share that only changes those changes nothing the unmasking uses.
      const check = await combined([...rest, s]);
      if (!check || !verify(check)) forgers.push(s.from);
    }
    return { secret, forgers };
  }
  throw new TributaryError('SECAGG_RECONSTRUCTION_FAILED', `${what}: no ${t} of the ${shares.length} revealed shares rebuild what its owner published`);
}
