import {
  agreeSeed,
  boxDecrypt,
  boxEncrypt,
  concatBytes,
  cryptoReady,
  equalBytes,
  generateBoxKeyPair,
  hash,
  randomBytes,
  type KeyPair,
} from '../../shared/crypto/sodium.ts';
import { TributaryError } from '../../shared/errors.ts';
import { expandSeed, type SeedExpander } from '../../shared/secagg/mask-stream.ts';
import { defaultNeighbourCount, neighbourGraph } from '../../shared/secagg/neighbours.ts';
import { createRng, deriveSeed, shuffleInPlace } from '../../shared/random.ts';
import { newRingVector, ringBits, addInto, type RingVector } from '../../shared/secagg/ring.ts';
import { maskInput, pairSign, sumLevels, type PairMask } from '../../shared/secagg/math.ts';
import { groupReveals, planUnmask, runUnmaskJob, type RevealedSecrets, type UnmaskJob } from '../../shared/secagg/unmask.ts';
import { MAX_SHARES, splitSecret } from '../../shared/secagg/shamir.ts';
import { safeThreshold } from '../../shared/secagg/parameters.ts';

/**
 * An in-process simulation of one SecAgg+ round, end to end: key advertisement, Shamir
 * sharing of each client's self-mask seed and mask secret key (encrypted client to
 * client), drop-outs at each phase, masking, the survivors' reveal, and the server's
 * reconstruction and unmasking, all with the real shared/ code. The unit tests check it
 * bit for bit; bench/secagg.ts times its phases. No networking: the "server" is the code
 * that only ever sees what the protocol sends it.
 */

export interface SimConfig {
  n: number;
  /** Parameters per client. */
  m: number;
  /** Quantization bits of the levels (8 in the bench). */
  bits: number;
  /** Neighbours per client; omitted = defaultNeighbourCount(n); ≥ n − 1 = complete graph. */
  k?: number;
  /** Shares needed to reconstruct a secret, from the number of share-holders. */
  threshold: number | ((holders: number) => number);
  /** Share-holders per client, the client included (at most 255, GF(256) Shamir's limit). */
  maxHolders?: number;
  /** Seeds levels, the graph and committees. */
  seed: number;
  /** Encrypt every share client to client with crypto_box (as the protocol does); default true. */
  encryptShares?: boolean;
  expand?: SeedExpander;
}

export interface SimClient {
  index: number;
  /** For pairwise mask agreement. */
  maskKeys: KeyPair;
  /** For encrypting shares to other clients. */
  shareKeys: KeyPair;
  selfSeed: Uint8Array;
  /** BLAKE2b of the self seed, as an advertisement publishes it. */
  commitment: Uint8Array;
  neighbours: readonly number[];
  /** Who holds shares of this client's secrets, itself first. */
  holders: readonly number[];
}

export interface SimRound {
  config: SimConfig;
  w: number;
  threshold: number;
  context: Uint8Array;
  clients: SimClient[];
  expand: SeedExpander;
  /** inbox[h]: the share messages relayed to holder h (ciphertext when encryptShares). */
  inbox: Array<Array<{ from: number; payload: Uint8Array }>>;
}

/** Clients dropping out after each phase; indices. */
export interface Drops {
  /** Advertised keys, then vanished: never shared, never masked with. */
  afterAdvertise?: readonly number[];
  /** Shared their secrets, never uploaded: the server removes their pair masks. */
  afterShare?: readonly number[];
  /** Uploaded, never answered the unmask request: their input counts, others reveal their self seed. */
  afterUpload?: readonly number[];
}

const SECRET_BYTES = 32;
const SHARE_BYTES = SECRET_BYTES + 1;

/** Deterministic random 8-bit (or `bits`-bit) levels for client `index`. */
export function clientLevels(seed: number, index: number, m: number, bits: number): Uint32Array {
  const rng = createRng(deriveSeed('levels', seed, index));
  const out = new Uint32Array(m);
  const shift = 32 - bits;
  for (let i = 0; i < m; i++) out[i] = rng.nextUint32() >>> shift;
  return out;
}

/** Client u's share-holders: itself, then up to maxHolders − 1 neighbours in a seeded order. */
function committee(seed: number, u: number, neighbours: readonly number[], maxHolders: number): number[] {
  if (neighbours.length + 1 <= maxHolders) return [u, ...neighbours];
  const order = shuffleInPlace([...neighbours], createRng(deriveSeed('committee', seed, u)));
  return [u, ...order.slice(0, maxHolders - 1)];
}

/** Client u's levels, regenerated on demand: 500 clients × 100,000 levels would be 200 MB held. */
export function levelsOf(round: SimRound, u: number): Uint32Array {
  const { seed, m, bits } = round.config;
  return clientLevels(seed, u, m, bits);
}

export async function createRound(config: SimConfig): Promise<SimRound> {
  await cryptoReady();
  const { n, bits, seed } = config;
  const k = config.k ?? defaultNeighbourCount(n);
  const maxHolders = Math.min(config.maxHolders ?? MAX_SHARES, MAX_SHARES);
  const graphSeed = new Uint8Array(32);
  new DataView(graphSeed.buffer).setUint32(0, seed);
  const graph = neighbourGraph(n, Math.min(k, n - 1), graphSeed);
  const clients: SimClient[] = graph.map((neighbours, index) => {
    const selfSeed = randomBytes(SECRET_BYTES);
    return {
      index,
      maskKeys: generateBoxKeyPair(),
      shareKeys: generateBoxKeyPair(),
      selfSeed,
      commitment: hash(selfSeed),
      neighbours,
      holders: committee(seed, index, neighbours, maxHolders),
    };
  });
  // Every committee has the same size (the graph is regular), so one threshold fits all.
  const holders = clients[0]!.holders.length;
  const threshold = typeof config.threshold === 'number' ? config.threshold : config.threshold(holders);
  return {
    config,
    w: ringBits(bits, n),
    threshold,
    context: new TextEncoder().encode(`tributary/secagg/mask/${seed}`),
    clients,
    expand: config.expand ?? expandSeed,
    inbox: Array.from({ length: n }, () => []),
  };
}

function ids(from: number, to: number): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, from);
  view.setUint32(4, to);
  return out;
}

/**
 * Phase 2: each sharer splits its self seed and mask secret key among its holders and
 * sends holder h the pair (b share ‖ sk share), bound to (from, to) so a relaying server
 * cannot redirect it. The shares of a client's own secrets it keeps, like Flower's SecAgg+.
 */
export async function shareKeys(round: SimRound, sharers: Iterable<number>): Promise<void> {
  const encrypt = round.config.encryptShares ?? true;
  for (const inbox of round.inbox) inbox.length = 0;
  for (const u of sharers) {
    const client = round.clients[u]!;
    const h = client.holders.length;
    const bShares = await splitSecret(client.selfSeed, h, round.threshold);
    const skShares = await splitSecret(client.maskKeys.secretKey, h, round.threshold);
    client.holders.forEach((holder, i) => {
      const plain = concatBytes(ids(u, holder), bShares[i]!, skShares[i]!);
      const payload = encrypt && holder !== u ? boxEncrypt(plain, round.clients[holder]!.shareKeys.publicKey, client.shareKeys.secretKey) : plain;
      round.inbox[holder]!.push({ from: u, payload });
    });
  }
}

export interface ClientMaskSpec {
  index: number;
  levels: Uint32Array;
  maskKeys: KeyPair;
  selfSeed: Uint8Array;
  /** Neighbours that shared their keys (U2): the pairs this client masks with. */
  partners: readonly number[];
}

/** Phase 3, the client's work: agree a seed with every partner, then mask. */
export function maskClient(
  spec: ClientMaskSpec,
  maskPublicKeys: readonly Uint8Array[],
  context: Uint8Array,
  w: number,
  expand: SeedExpander,
): RingVector {
  const pairs: PairMask[] = spec.partners.map((v) => ({
    seed: agreeSeed(spec.maskKeys.secretKey, spec.maskKeys.publicKey, maskPublicKeys[v]!, context),
    sign: pairSign(spec.index, v),
  }));
  return maskInput(spec.levels, w, spec.selfSeed, pairs, expand);
}

export function maskSpec(round: SimRound, u: number, shared: ReadonlySet<number>): ClientMaskSpec {
  const c = round.clients[u]!;
  return { index: u, levels: levelsOf(round, u), maskKeys: c.maskKeys, selfSeed: c.selfSeed, partners: c.neighbours.filter((v) => shared.has(v)) };
}

export function maskPublicKeys(round: SimRound): Uint8Array[] {
  return round.clients.map((c) => c.maskKeys.publicKey);
}

/**
 * Phase 4, each answering holder's work: open its inbox and reveal, for each sharer, the
 * b share if the server says the sharer uploaded and the sk share if not — never both.
 */
export function revealShares(round: SimRound, uploaded: ReadonlySet<number>, answering: Iterable<number>): RevealedSecrets {
  const encrypt = round.config.encryptShares ?? true;
  const reveals: Array<[number, Array<{ of: number; share: Uint8Array }>]> = [];
  for (const h of answering) {
    const holder = round.clients[h]!;
    reveals.push([h, round.inbox[h]!.map(({ from, payload }) => {
      const plain = encrypt && from !== h ? boxDecrypt(payload, round.clients[from]!.shareKeys.publicKey, holder.shareKeys.secretKey) : payload;
      if (!equalBytes(plain.subarray(0, 8), ids(from, h))) throw new TributaryError('INTERNAL', `share for ${h} from ${from} is misaddressed`);
      const offset = uploaded.has(from) ? 8 : 8 + SHARE_BYTES;
      return { of: from, share: plain.slice(offset, offset + SHARE_BYTES) };
    })]);
  }
  return groupReveals(reveals, uploaded);
}

/** Phase 4, the server's bookkeeping, exactly as the live server does it (shared/secagg/unmask.ts). */
export function unmaskJob(round: SimRound, shared: ReadonlySet<number>, uploaded: ReadonlySet<number>, revealed: RevealedSecrets): UnmaskJob {
  return planUnmask({
    w: round.w,
    m: round.config.m,
    context: round.context,
    threshold: round.threshold,
    graph: round.clients.map((c) => c.neighbours),
    sharers: shared,
    uploaded,
    published: (index) => ({ maskKey: round.clients[index]!.maskKeys.publicKey, commitment: round.clients[index]!.commitment }),
    revealed,
  });
}

export interface SimResult {
  /** The unmasked sum. */
  sum: RingVector;
  /** sumLevels over the clients that uploaded. */
  expected: RingVector;
  uploaded: number[];
}

/** A whole round with the given drop-outs, single-threaded. */
export async function simulateDrops(round: SimRound, drops: Drops): Promise<SimResult> {
  const all = round.clients.map((c) => c.index);
  const gone1 = new Set(drops.afterAdvertise ?? []);
  const shared = new Set(all.filter((u) => !gone1.has(u)));
  await shareKeys(round, shared);
  const gone2 = new Set(drops.afterShare ?? []);
  const uploaded = new Set([...shared].filter((u) => !gone2.has(u)));
  const gone3 = new Set(drops.afterUpload ?? []);
  const answering = [...uploaded].filter((u) => !gone3.has(u));

  const keys = maskPublicKeys(round);
  const maskedSum = newRingVector(round.w, round.config.m);
  for (const u of uploaded) addInto(maskedSum, maskClient(maskSpec(round, u, shared), keys, round.context, round.w, round.expand), round.w);

  const revealed = revealShares(round, uploaded, answering);
  const job = unmaskJob(round, shared, uploaded, revealed);
  const { vector: sum } = await runUnmaskJob(job, maskedSum, round.expand);
  const uploadedList = [...uploaded].sort((a, b) => a - b);
  return { sum, expected: sumLevels(uploadedList.map((u) => levelsOf(round, u)), round.w), uploaded: uploadedList };
}

/** The first round(fraction · n) clients of a seeded permutation: nested across fractions. */
export function pickDropped(n: number, fraction: number, seed: number): number[] {
  const order = shuffleInPlace(Array.from({ length: n }, (_, i) => i), createRng(deriveSeed('drops', seed, n)));
  return order.slice(0, Math.round(fraction * n)).sort((a, b) => a - b);
}

function logFactorials(n: number): Float64Array {
  const out = new Float64Array(n + 1);
  for (let i = 2; i <= n; i++) out[i] = out[i - 1]! + Math.log(i);
  return out;
}

/** P(X < t), X hypergeometric: `draws` from `population` of which `good` are good. */
function hypergeometricBelow(t: number, population: number, good: number, draws: number, lf: Float64Array): number {
  const logC = (a: number, b: number) => lf[a]! - lf[b]! - lf[a - b]!;
  let p = 0;
  for (let x = Math.max(0, draws - (population - good)); x < t && x <= Math.min(draws, good); x++) {
    p += Math.exp(logC(good, x) + logC(population - good, draws - x) - logC(population, draws));
  }
  return p;
}

/**
 * An upper bound on the chance that some secret cannot be rebuilt with threshold t when
 * round(dropFraction · n) uniformly random clients vanish after sharing keys (union bound
 * over the n secrets). A dropped client's key lives on in its h − 1 other holders; an
 * uploader also keeps its own share.
 */
export function reconstructionFailure(n: number, holders: number, dropFraction: number, t: number): number {
  const lf = logFactorials(n);
  const dropped = Math.round(dropFraction * n);
  const others = holders - 1;
  return (
    dropped * hypergeometricBelow(t, n - 1, n - dropped, others, lf) +
    (n - dropped) * hypergeometricBelow(t - 1, n - 1, n - dropped - 1, others, lf)
  );
}

/**
 * The fewest neighbours (an even k from the default up, at most n − 1) whose safe threshold,
 * a majority of the k + 1 holders, still rebuilds every needed secret when `dropFraction`
 * of the clients vanish after sharing keys, but for a chance of at most `failure`.
 */
export function neighboursForDropouts(n: number, dropFraction: number, failure = 1e-3): number {
  for (let k = defaultNeighbourCount(n); k < n - 1; k += 2) {
    const holders = Math.min(k + 1, MAX_SHARES);
    if (reconstructionFailure(n, holders, dropFraction, safeThreshold(holders)) <= failure) return k;
  }
  return n - 1;
}
