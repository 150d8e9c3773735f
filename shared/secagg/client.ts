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
import { decodeSharePlain, encodeSharePlain, holdersOf, identityKeyOf, packIndexed, roundGraph, SHARE_BOX_BYTES, SHARE_BYTES, unpackIndexed, partnersOf, partnersSigned, signAdvertisement, signPartners, signSurvivors, survivorsSigned, verifyAdvertisement, type AdvertisedKeys, type Confirmation, type RelayedShares, type SecureRoundConfig } from './protocol.ts';
import { checkThreshold, consistencyQuorum } from './parameters.ts';
import { splitSecret } from './shamir.ts';

type Stage = 'created' | 'advertised' | 'shared' | 'received' | 'masked' | 'confirmed' | 'revealed';

/**
 * One client's side of one SecAgg+ round, as a state machine without I/O: each method
 * takes what the server relayed, checks it, and returns the next message. It trusts the
 * server with nothing it could abuse: every peer key must carry its owner's identity
 * signature, every share must authenticate, and it reveals a peer's self-seed share or
 * its mask-key share but never both, and only after a quorum of the participants signed
 * the same survivor list; it masks only when the server's view of who shared leaves the
 * server no way to unmask it alone.
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
    // A server asking for a threshold below the safe bound could rebuild both of our secrets.
    checkThreshold(config.threshold, config.neighbours);
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
    const expected = partnersOf(this.index, this.graph, sharers);
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
    this.refuseUnsafeSharers(sharers, expected);
    this.sharers = sharers;
    this.partners = expected;
  }

  /**
   * Enough sharers, and enough of its own neighbours among them, that t holders of its self
   * seed that it masked with can ever reveal it: otherwise its input could never be
   * unmasked in a sum of t, and masking would only hand the server its upload.
   */
  private refuseUnsafeSharers(sharers: ReadonlySet<number>, partners: readonly number[]): void {
    const t = this.config.threshold;
    if (sharers.size < t) throw new TributaryError('SECAGG_UNSAFE_VIEW', `${sharers.size} sharers, threshold ${t}`);
    if (partners.length + 1 < t) throw new TributaryError('SECAGG_UNSAFE_VIEW', `${partners.length} of this client's neighbours shared: with it, fewer than the threshold ${t}`);
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

  /** Phase 3, with the upload: this client's identity signature over the partners it masked with. */
  partnersSignature(): Uint8Array {
    if (this.stage !== 'masked') throw new TributaryError('SECAGG_OUT_OF_PHASE', `expected masked, at ${this.stage}`);
    return signPartners(this.context, this.partners, this.identity.secretKey);
  }

  /** Phase 4: signs the survivor list the server announced, after checking it could be true. */
  confirm(survivors: readonly number[]): Uint8Array {
    this.advance('masked', 'confirmed');
    const sorted = [...new Set(survivors)].sort((a, b) => a - b);
    if (sorted.length !== survivors.length || !sorted.includes(this.index) || sorted.some((v) => !this.sharers.has(v))) {
      throw new TributaryError('BAD_REQUEST', 'survivors must be distinct sharers including this client');
    }
    const quorum = consistencyQuorum(this.config.participants.length, this.config.threshold);
    if (sorted.length < quorum) {
      throw new TributaryError('SECAGG_TOO_FEW_SHARES', `${sorted.length} survivors, need ${quorum} to confirm them`);
    }
    // Distributed DP: fewer survivors would unmask a sum with less noise than the task promises.
    const noise = this.config.input.noise;
    if (noise && sorted.length < noise.minSurvivors) {
      throw new TributaryError('SECAGG_UNSAFE_VIEW', `${sorted.length} survivors carry less noise than the ${noise.minSurvivors} the round's privacy needs`);
    }
    this.survivors = sorted;
    return signSurvivors(this.context, sorted, this.identity.secretKey);
  }

  /**
   * Phase 5: once a quorum signed the same list, reveals for each owner whose shares this
   * client holds its self-seed share if it survived, else its mask-key share. A survivor's
   * self-seed share only if the owner signed, as its partners, exactly its neighbours among
   * the sharers this client was shown: so this client is among them, and the owner's upload
   * still carries the pair mask they share.
   */
  reveal(confirmations: readonly Confirmation[], partnerSignatures: readonly Confirmation[]): Uint8Array {
    this.advance('confirmed', 'revealed');
    const signers = new Set<number>();
    for (const c of confirmations) {
      const signer = identityKeyOf(this.config, c.index);
      if (signer && this.survivors.includes(c.index) && survivorsSigned(this.context, this.survivors, c.signature, signer)) {
        signers.add(c.index);
      }
    }
    // A quorum of the participants: no other list can have one too, so every revealing client acts on this list.
    const quorum = consistencyQuorum(this.config.participants.length, this.config.threshold);
    if (signers.size < quorum) {
      throw new TributaryError('SECAGG_UNSAFE_VIEW', `${signers.size} valid confirmations of the survivor list, need ${quorum}`);
    }
    const survived = new Set(this.survivors);
    for (const owner of this.held.keys()) {
      if (owner === this.index || !survived.has(owner)) continue;
      const proof = partnerSignatures.find((p) => p.index === owner);
      if (!proof || !partnersSigned(this.context, partnersOf(owner, this.graph, this.sharers), proof.signature, identityKeyOf(this.config, owner)!)) {
        throw new TributaryError('SECAGG_UNSAFE_VIEW', `participant ${owner} did not mask with the sharers this client was shown`);
      }
    }
    return packIndexed([...this.held].map(([of, shares]) => ({ index: of, bytes: survived.has(of) ? shares.selfSeed : shares.maskKey })), SHARE_BYTES);
  }
}
