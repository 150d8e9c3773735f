import {
  agreeSeed,
  boxDecrypt,
  boxEncrypt,
  equalBytes,
  generateBoxKeyPair,
  hash,
  randomBytes,
  type KeyPair,
} from '../crypto/sodium.ts';
import { TributaryError } from '../errors.ts';
import type { SeedExpander } from './mask-stream.ts';
import type { RingVector } from './ring.ts';
import { maskInput, pairSign } from './math.ts';
import {
  decodeSharePlain,
  encodeSharePlain,
  holdersOf,
  identityKeyOf,
  packIndexed,
  roundGraph,
  SHARE_BOX_BYTES,
  SHARE_BYTES,
  unpackIndexed,
  signAdvertisement,
  signSurvivors,
  survivorsSigned,
  verifyAdvertisement,
  type AdvertisedKeys,
  type Confirmation,
  type RelayedShares,
  type SecureRoundConfig,
} from './protocol.ts';
import { splitSecret } from './shamir.ts';

type Stage = 'created' | 'advertised' | 'shared' | 'received' | 'masked' | 'confirmed' | 'revealed';

/**
 * One client's side of one SecAgg+ round, as a state machine without I/O: each method
 * takes what the server relayed, checks it, and returns the next message. It trusts the
 * server with nothing it could abuse: every peer key must carry its owner's identity
 * signature, every share must authenticate, and it reveals a peer's self-seed share or
 * its mask-key share but never both, only after t participants signed the same survivor list.
 */
export class SecAggClient {
  private stage: Stage = 'created';
  private readonly graph: number[][];
  private readonly shareKeys = generateBoxKeyPair();
  private readonly maskKeys = generateBoxKeyPair();
  private readonly selfSeed = randomBytes(32);
  private readonly peers = new Map<number, AdvertisedKeys>();
  /** Shares this client holds, by owner: its own and its neighbours'. */
  private readonly held = new Map<number, { selfSeed: Uint8Array; maskKey: Uint8Array }>();
  private partners: number[] = [];
  private sharers = new Set<number>();
  private survivors: number[] = [];

  constructor(
    private readonly config: SecureRoundConfig,
    /** roundContext(taskId, round, aggregatorKey). */
    private readonly context: Uint8Array,
    readonly index: number,
    /** This client's long-term Ed25519 identity (its public key is identityKeyOf(config, index)). */
    private readonly identity: KeyPair,
  ) {
    const me = identityKeyOf(config, index);
    if (!me || !equalBytes(me, identity.publicKey)) {
      throw new TributaryError('SIGNATURE_INVALID', 'the round config does not list this client under its identity key');
    }
    this.graph = roundGraph(config);
  }

  private advance(from: Stage, to: Stage): void {
    if (this.stage !== from) throw new TributaryError('SECAGG_OUT_OF_PHASE', `expected ${from}, at ${this.stage}`);
    this.stage = to;
  }

  /** Phase 1: fresh X25519 keys for this round, signed with the identity. */
  advertise(): AdvertisedKeys {
    this.advance('created', 'advertised');
    return signAdvertisement(
      this.context,
      { index: this.index, shareKey: this.shareKeys.publicKey, maskKey: this.maskKeys.publicKey, commitment: hash(this.selfSeed) },
      this.identity.secretKey,
    );
  }

  /** Phase 2: checks every advertised key against its owner's identity, then shares both secrets with the holders. */
  async share(advertised: readonly AdvertisedKeys[]): Promise<Uint8Array> {
    this.advance('advertised', 'shared');
    const n = this.config.participants.length;
    for (const keys of advertised) {
      const owner = identityKeyOf(this.config, keys.index);
      if (!owner || this.peers.has(keys.index)) throw new TributaryError('BAD_REQUEST', `advertisement for participant ${keys.index}`);
      verifyAdvertisement(this.context, keys, owner);
      this.peers.set(keys.index, keys);
    }
    const mine = this.peers.get(this.index);
    if (!mine || !equalBytes(mine.maskKey, this.maskKeys.publicKey) || !equalBytes(mine.shareKey, this.shareKeys.publicKey)) {
      throw new TributaryError('SIGNATURE_INVALID', 'the server relayed other keys for this client');
    }
    const holders = holdersOf(this.index, this.graph, new Set(this.peers.keys()));
    if (holders.length < this.config.threshold) {
      throw new TributaryError('SECAGG_TOO_FEW_SHARES', `${holders.length} of ${n} holders advertised, threshold ${this.config.threshold}`);
    }
    const selfSeedShares = await splitSecret(this.selfSeed, holders.length, this.config.threshold);
    const maskKeyShares = await splitSecret(this.maskKeys.secretKey, holders.length, this.config.threshold);
    const boxes: Array<{ index: number; bytes: Uint8Array }> = [];
    holders.forEach((to, i) => {
      const plain = { from: this.index, to, selfSeedShare: selfSeedShares[i]!, maskKeyShare: maskKeyShares[i]! };
      if (to === this.index) this.held.set(this.index, { selfSeed: plain.selfSeedShare, maskKey: plain.maskKeyShare });
      else boxes.push({ index: to, bytes: boxEncrypt(encodeSharePlain(plain), this.peers.get(to)!.shareKey, this.shareKeys.secretKey) });
    });
    return packIndexed(boxes, SHARE_BOX_BYTES);
  }

  /**
   * Phase 2, relayed: opens the shares addressed to this client. Every neighbour the server
   * says shared must have sent one, and each must authenticate as from that neighbour to us.
   */
  receive(relayed: RelayedShares): void {
    this.advance('shared', 'received');
    const sharers = new Set(relayed.sharers);
    if (!sharers.has(this.index)) throw new TributaryError('SECAGG_OUT_OF_PHASE', 'the server did not count this client as a sharer');
    for (const v of sharers) {
      if (!this.peers.has(v)) throw new TributaryError('BAD_REQUEST', `participant ${v} shared without advertising`);
    }
    const expected = this.graph[this.index]!.filter((v) => sharers.has(v));
    const boxes = new Map<number, Uint8Array>();
    for (const { index: from, bytes: box } of unpackIndexed(relayed.boxes, SHARE_BOX_BYTES)) {
      if (boxes.has(from) || !expected.includes(from)) throw new TributaryError('BAD_REQUEST', `unexpected share from participant ${from}`);
      boxes.set(from, box);
    }
    for (const from of expected) {
      const box = boxes.get(from);
      if (!box) throw new TributaryError('SECAGG_TOO_FEW_SHARES', `no share from neighbour ${from}`);
      const plain = decodeSharePlain(boxDecrypt(box, this.peers.get(from)!.shareKey, this.shareKeys.secretKey));
      if (plain.from !== from || plain.to !== this.index) {
        throw new TributaryError('DECRYPTION_FAILED', `share from ${from} is addressed ${plain.from} → ${plain.to}`);
      }
      this.held.set(from, { selfSeed: plain.selfSeedShare, maskKey: plain.maskKeyShare });
    }
    this.sharers = sharers;
    this.partners = expected;
  }

  /** Phase 3: y = x + PRG(b) + Σ ± PRG(s_uv) over the neighbours that shared. */
  mask(levels: Uint32Array, expand: SeedExpander): RingVector {
    this.advance('received', 'masked');
    const pairs = this.partners.map((v) => ({
      seed: agreeSeed(this.maskKeys.secretKey, this.maskKeys.publicKey, this.peers.get(v)!.maskKey, this.context),
      sign: pairSign(this.index, v),
    }));
    return maskInput(levels, this.config.ringBits, this.selfSeed, pairs, expand);
  }

  /** Phase 4: signs the survivor list the server announced, after checking it could be true. */
  confirm(survivors: readonly number[]): Uint8Array {
    this.advance('masked', 'confirmed');
    const sorted = [...new Set(survivors)].sort((a, b) => a - b);
    if (sorted.length !== survivors.length || !sorted.includes(this.index) || sorted.some((v) => !this.sharers.has(v))) {
      throw new TributaryError('BAD_REQUEST', 'survivors must be distinct sharers including this client');
    }
    if (sorted.length < this.config.threshold) {
      throw new TributaryError('SECAGG_TOO_FEW_SHARES', `${sorted.length} survivors, threshold ${this.config.threshold}`);
    }
    this.survivors = sorted;
    return signSurvivors(this.context, sorted, this.identity.secretKey);
  }

  /**
   * Phase 5: once t survivors signed the same list, reveals for each owner whose shares
   * this client holds its self-seed share if it survived, else its mask-key share.
   */
  reveal(confirmations: readonly Confirmation[]): Uint8Array {
    this.advance('confirmed', 'revealed');
    const signers = new Set<number>();
    for (const c of confirmations) {
      const signer = identityKeyOf(this.config, c.index);
      if (signer && this.survivors.includes(c.index) && survivorsSigned(this.context, this.survivors, c.signature, signer)) {
        signers.add(c.index);
      }
    }
    if (signers.size < this.config.threshold) {
      throw new TributaryError('SIGNATURE_INVALID', `${signers.size} valid confirmations of the survivor list, threshold ${this.config.threshold}`);
    }
    const survived = new Set(this.survivors);
    return packIndexed([...this.held].map(([of, shares]) => ({ index: of, bytes: survived.has(of) ? shares.selfSeed : shares.maskKey })), SHARE_BYTES);
  }
}
