import { agreeSeed, boxPublicKey, equalBytes, hash } from '../crypto/sodium.ts';
import { TributaryError } from '../errors.ts';
import type { SeedExpander } from './mask-stream.ts';
import { newRingVector, type RingVector } from './ring.ts';
import { pairSign, unmaskSum, type PairMask } from './math.ts';
import { recoverSecret, type HeldShare } from './recover.ts';

/**
 * The server's unmasking work for one SecAgg+ round, as data: which secrets to rebuild
 * from which revealed shares. Pure, so the live server, the benchmark and its worker
 * threads all run exactly this.
 */
export interface UnmaskJob {
  w: number;
  m: number;
  /** Binds the pair seeds to the round (shared/secagg-protocol.ts roundContext). */
  context: Uint8Array;
  /** Shares needed to rebuild a secret. */
  threshold: number;
  /** One entry per uploader: every revealed share of its self-mask seed, and the seed's hash it published. */
  survivors: Array<{ index: number; shares: HeldShare[]; commitment: Uint8Array }>;
  /** One entry per client that shared keys but did not upload, with the uploaders among its neighbours. */
  dropped: Array<{
    index: number;
    publicKey: Uint8Array;
    skShares: HeldShare[];
    partners: Array<{ index: number; publicKey: Uint8Array }>;
  }>;
}

/** What unmasking yields: the vector, and the participants caught revealing a forged share (left out). */
export interface Unmasked {
  vector: RingVector;
  forgers: number[];
}

/** Runs an unmask job against a masked sum and returns the plain sum: in one thread, or dealt to several. */
export type Unmasker = (job: UnmaskJob, maskedSum: RingVector) => Promise<Unmasked>;

function atLeast(shares: readonly HeldShare[] | undefined, t: number, what: string): HeldShare[] {
  if (!shares || shares.length < t) throw new TributaryError('SECAGG_TOO_FEW_SHARES', `${shares?.length ?? 0} of ${t} shares for ${what}`);
  return [...shares];
}

/** Revealed shares by whose secret they rebuild: the uploaders' self-mask seeds, the other sharers' mask keys. */
export interface RevealedSecrets {
  selfSeed: Map<number, HeldShare[]>;
  maskKey: Map<number, HeldShare[]>;
}

/** Sorts each holder's reveal (owner index and share), by holder, into the secret it rebuilds. */
export function groupReveals(reveals: Iterable<readonly [number, readonly { of: number; share: Uint8Array }[]]>, uploaded: ReadonlySet<number>): RevealedSecrets {
  const grouped: RevealedSecrets = { selfSeed: new Map(), maskKey: new Map() };
  for (const [from, shares] of reveals) {
    for (const { of, share } of shares) {
      const target = uploaded.has(of) ? grouped.selfSeed : grouped.maskKey;
      let list = target.get(of);
      if (!list) target.set(of, (list = []));
      list.push({ from, share });
    }
  }
  return grouped;
}

/** What the server knows at the end of a round, from which `planUnmask` decides which secrets to rebuild. */
export interface UnmaskInputs {
  w: number;
  m: number;
  context: Uint8Array;
  threshold: number;
  /** Each participant's neighbours: who it masked with. */
  graph: readonly (readonly number[])[];
  /** Who finished sharing its secrets. */
  sharers: Iterable<number>;
  /** Who uploaded a masked input. */
  uploaded: ReadonlySet<number>;
  /** What each participant published when it advertised: its mask public key and its self seed's hash. */
  published: (index: number) => { maskKey: Uint8Array; commitment: Uint8Array };
  revealed: RevealedSecrets;
}

/**
 * The server's bookkeeping after the reveal: each uploader's self-mask seed, and the mask
 * key of each sharer that did not upload but masked with an uploader. Too few shares for
 * any of them is SECAGG_TOO_FEW_SHARES.
 */
export function planUnmask(inputs: UnmaskInputs): UnmaskJob {
  const { threshold: t, graph, uploaded, published, revealed } = inputs;
  const job: UnmaskJob = { w: inputs.w, m: inputs.m, context: inputs.context, threshold: t, survivors: [], dropped: [] };
  for (const u of [...uploaded].sort((a, b) => a - b)) {
    job.survivors.push({ index: u, shares: atLeast(revealed.selfSeed.get(u), t, `participant ${u}'s self-mask seed`), commitment: published(u).commitment });
  }
  for (const v of [...inputs.sharers].sort((a, b) => a - b)) {
    if (uploaded.has(v)) continue;
    const partners = graph[v]!.filter((u) => uploaded.has(u));
    if (partners.length === 0) continue;
    job.dropped.push({
      index: v,
      publicKey: published(v).maskKey,
      skShares: atLeast(revealed.maskKey.get(v), t, `participant ${v}'s mask key`),
      partners: partners.map((u) => ({ index: u, publicKey: published(u).maskKey })),
    });
  }
  return job;
}

/** Deals a job's secrets round-robin into `parts` jobs: unmasking is linear, so their results add up. */
export function splitJob(job: UnmaskJob, parts: number): UnmaskJob[] {
  const out = Array.from({ length: parts }, (): UnmaskJob => ({ ...job, survivors: [], dropped: [] }));
  job.survivors.forEach((s, i) => out[i % parts]!.survivors.push(s));
  job.dropped.forEach((d, i) => out[i % parts]!.dropped.push(d));
  return out;
}

/**
 * Reconstructs each secret, checked against what its owner published (the self seed's
 * hash, the mask key's public key): a forged share is found and its revealer left out
 * rather than corrupting the sum or aborting the round (recover.ts). Then re-derives the
 * dropped clients' pair seeds and removes every mask. With `maskedSum` null it returns this
 * job's part of the correction, to be added to the others.
 */
export async function runUnmaskJob(job: UnmaskJob, maskedSum: RingVector | null, expand: SeedExpander): Promise<Unmasked> {
  const forgers = new Set<number>();
  const selfSeeds: Uint8Array[] = [];
  for (const s of job.survivors) {
    const { secret, forgers: bad } = await recoverSecret(s.shares, job.threshold, (seed) => equalBytes(hash(seed), s.commitment), `participant ${s.index}'s self-mask seed`);
    bad.forEach((f) => forgers.add(f));
    selfSeeds.push(secret);
  }
  const pairs: PairMask[] = [];
  for (const d of job.dropped) {
    const { secret: secretKey, forgers: bad } = await recoverSecret(d.skShares, job.threshold, (sk) => equalBytes(boxPublicKey(sk), d.publicKey), `participant ${d.index}'s mask key`);
    bad.forEach((f) => forgers.add(f));
    for (const p of d.partners) {
      pairs.push({ seed: agreeSeed(secretKey, d.publicKey, p.publicKey, job.context), sign: pairSign(p.index, d.index) });
    }
  }
  const vector = unmaskSum(maskedSum ?? newRingVector(job.w, job.m), job.w, selfSeeds, pairs, expand);
  return { vector, forgers: [...forgers].sort((a, b) => a - b) };
}
