import { combine, split } from 'shamir-secret-sharing';
import { TributaryError } from '../errors.ts';

/**
 * Shamir secret sharing over GF(2^8) by the audited `shamir-secret-sharing` package: each
 * share is the secret's length plus one byte (its x-coordinate), so at most 255 shares.
 * With fewer than `threshold` shares, combining does not fail: it returns unrelated bytes,
 * which is exactly the guarantee that t − 1 shares reveal nothing.
 */

export const MAX_SHARES = 255;

/** The package checks `constructor === Uint8Array`, which a Buffer or other subclass fails. */
function plain(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes);
}

export async function splitSecret(secret: Uint8Array, shares: number, threshold: number): Promise<Uint8Array[]> {
  if (!(secret instanceof Uint8Array) || secret.length === 0) {
    throw new TributaryError('BAD_REQUEST', 'secret must be non-empty bytes');
  }
  if (!Number.isInteger(shares) || !Number.isInteger(threshold) || threshold < 2 || threshold > shares || shares > MAX_SHARES) {
    throw new TributaryError('BAD_REQUEST', `need 2 ≤ threshold ≤ shares ≤ ${MAX_SHARES}, got ${threshold} of ${shares}`);
  }
  return split(plain(secret), shares, threshold);
}

/** Reconstructs from any `threshold` or more shares; pass exactly `threshold`, as cost grows with the square of the count. */
export async function combineShares(shares: Uint8Array[]): Promise<Uint8Array> {
  if (shares.length < 2) throw new TributaryError('SECAGG_TOO_FEW_SHARES', `${shares.length} share(s), need at least 2`);
  if (shares.length > MAX_SHARES) throw new TributaryError('BAD_REQUEST', `${shares.length} shares, at most ${MAX_SHARES}`);
  const length = shares[0]!.length;
  const xs = new Set<number>();
  for (const s of shares) {
    if (!(s instanceof Uint8Array) || s.length < 2 || s.length !== length) {
      throw new TributaryError('BAD_REQUEST', 'shares must be equally long byte strings of at least 2 bytes');
    }
    xs.add(s[length - 1]!);
  }
  if (xs.size !== shares.length) throw new TributaryError('BAD_REQUEST', 'two shares have the same x-coordinate');
  return combine(shares.map(plain));
}
