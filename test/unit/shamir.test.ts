import { describe, expect, it } from 'vitest';
import { combineShares, MAX_SHARES, splitSecret } from '../../shared/secagg/shamir.ts';
import { createRng, shuffleInPlace } from '../../shared/random.ts';

const secret = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);

async function expectCodeAsync(promise: Promise<unknown>, code: string): Promise<void> {
  await expect(promise).rejects.toMatchObject({ code });
}

describe('Shamir secret sharing', () => {
  it.each([
    [2, 2],
    [3, 2],
    [5, 3],
    [10, 7],
    [19, 13],
    [MAX_SHARES, 170],
  ])('reconstructs from any t of n shares (n = %i, t = %i)', async (n, t) => {
    const shares = await splitSecret(secret, n, t);
    expect(shares).toHaveLength(n);
    for (const s of shares) expect(s).toHaveLength(secret.length + 1);
    const rng = createRng(n * 1000 + t);
    for (let trial = 0; trial < 3; trial++) {
      const subset = shuffleInPlace([...shares], rng).slice(0, t);
      expect(await combineShares(subset)).toEqual(secret);
    }
    expect(await combineShares(shares)).toEqual(secret); // more than t is fine too
  });

  it('does not give the secret from t − 1 shares', async () => {
    for (const [n, t] of [[5, 3], [10, 7], [30, 20]] as const) {
      const shares = await splitSecret(secret, n, t);
      const rng = createRng(t);
      for (let trial = 0; trial < 5; trial++) {
        const subset = shuffleInPlace([...shares], rng).slice(0, t - 1);
        expect(await combineShares(subset)).not.toEqual(secret);
      }
    }
  });

  it('refuses to combine a single share', async () => {
    const shares = await splitSecret(secret, 3, 2);
    await expectCodeAsync(combineShares(shares.slice(0, 1)), 'SECAGG_TOO_FEW_SHARES');
  });

  it('validates 2 ≤ threshold ≤ shares ≤ 255', async () => {
    await expectCodeAsync(splitSecret(secret, 5, 1), 'BAD_REQUEST');
    await expectCodeAsync(splitSecret(secret, 3, 4), 'BAD_REQUEST');
    await expectCodeAsync(splitSecret(secret, 256, 100), 'BAD_REQUEST');
    await expectCodeAsync(splitSecret(secret, 5.5, 3), 'BAD_REQUEST');
    await expectCodeAsync(splitSecret(new Uint8Array(0), 5, 3), 'BAD_REQUEST');
  });

  it('rejects duplicate or unequal shares', async () => {
    const shares = await splitSecret(secret, 4, 2);
    await expectCodeAsync(combineShares([shares[0]!, shares[0]!]), 'BAD_REQUEST');
    await expectCodeAsync(combineShares([shares[0]!, shares[1]!.subarray(1)]), 'BAD_REQUEST');
  });

  it('accepts Buffers and views, which the library alone would refuse', async () => {
    const shares = await splitSecret(Buffer.from(secret), 3, 2);
    const views = shares.map((s) => {
      const backing = new Uint8Array(s.length + 1);
      backing.set(s, 1);
      return backing.subarray(1);
    });
    expect(await combineShares([Buffer.from(views[0]!), views[2]!])).toEqual(secret);
  });
});
