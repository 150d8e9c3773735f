import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRound, maskClient, shareKeys, maskPublicKeys, maskSpec, unmaskJob, revealShares } from '../support/secagg-sim.ts';
import { UnmaskPool } from '../../server/secagg/unmask-pool.ts';
import { cryptoReady } from '../../shared/crypto/sodium.ts';
import { expandSeed } from '../../shared/secagg/mask-stream.ts';
import { addInto, newRingVector } from '../../shared/secagg/ring.ts';
import { runUnmaskJob } from '../../shared/secagg/unmask.ts';

describe('unmasking on worker threads', () => {
  const pool = new UnmaskPool(2);
  beforeAll(cryptoReady);
  afterAll(() => pool.close());

  async function scenario() {
    const round = await createRound({ n: 12, m: 5_000, bits: 8, k: 6, seed: 11, threshold: 4 });
    const all = round.clients.map((c) => c.index);
    const shared = new Set(all);
    await shareKeys(round, shared);
    const uploaded = new Set(all.filter((u) => u !== 3 && u !== 8)); // two drop after sharing keys
    const keys = maskPublicKeys(round);
    const maskedSum = newRingVector(round.w, round.config.m);
    for (const u of uploaded) addInto(maskedSum, maskClient(maskSpec(round, u, shared), keys, round.context, round.w, expandSeed), round.w);
    const job = unmaskJob(round, shared, uploaded, revealShares(round, uploaded, uploaded));
    return { job, maskedSum };
  }

  it('gives the same plain sum as one thread, bit for bit', async () => {
    const { job, maskedSum } = await scenario();
    const single = await runUnmaskJob(job, maskedSum, expandSeed);
    expect(single.forgers).toEqual([]);
    expect(await pool.unmask(job, maskedSum)).toEqual(single);
    // Twice: the workers stay up between rounds.
    expect(await pool.unmask(job, maskedSum)).toEqual(single);
  });

  it('finds a forged mask-key share, leaves its revealer out and still gives the exact sum', async () => {
    const { job, maskedSum } = await scenario();
    const honest = await runUnmaskJob(job, maskedSum, expandSeed);
    const forged = structuredClone(job);
    const victim = forged.dropped[0]!.skShares[0]!;
    victim.share[10]! ^= 1; // a byte every bit of which the key uses (X25519 ignores some bits of the first and last)
    expect(await pool.unmask(forged, maskedSum)).toEqual({ vector: honest.vector, forgers: [victim.from] });
  });

  it('finds a forged self-seed share by the commitment its owner published', async () => {
    const { job, maskedSum } = await scenario();
    const honest = await runUnmaskJob(job, maskedSum, expandSeed);
    const forged = structuredClone(job);
    const victim = forged.survivors[2]!.shares[1]!;
    victim.share[5]! ^= 0x40;
    expect(await runUnmaskJob(forged, maskedSum, expandSeed)).toEqual({ vector: honest.vector, forgers: [victim.from] });
  });

  it('rejects with the coded error a worker raised when fewer than t genuine shares are left', async () => {
    const { job, maskedSum } = await scenario();
    const forged = structuredClone(job);
    const shares = forged.dropped[0]!.skShares;
    // Each forged share in a byte of its own: one flip in the same byte of several shares can
    // cancel out in the interpolation (their Lagrange weights summing to zero in GF(256), for
    // some draws of the random x-coordinates) and leave the key intact. Bytes 1–30: X25519
    // ignores some bits of the first and last.
    shares.slice(0, shares.length - job.threshold + 1).forEach((s, i) => (s.share[1 + (i % 30)]! ^= 1));
    await expect(pool.unmask(forged, maskedSum)).rejects.toMatchObject({ code: 'SECAGG_RECONSTRUCTION_FAILED' });
  });
});
