import { TributaryError } from '../../shared/errors.ts';
import { addInto, newRingVector, type RingVector } from '../../shared/secagg/ring.ts';
import { holdersOf, identityKeyOf, packAdvertised, packConfirmations, packIndexed, roundGraph, SHARE_BOX_BYTES, SHARE_BYTES, unpackIndexed, partnersOf, partnersSigned, PARTNERS_SIGNATURE_BYTES, type RelayedConfirmations, survivorsSigned, verifyAdvertisement, type AdvertiseRequest, type AdvertisedKeys, type RelayedShares, type RevealedShare, type SecureRoundConfig } from '../../shared/secagg/protocol.ts';
import { consistencyQuorum } from '../../shared/secagg/parameters.ts';
import { groupReveals, planUnmask, type Unmasked, type Unmasker } from '../../shared/secagg/unmask.ts';
import { Announcement, Phase } from './phase.ts';

export interface SecureRoundOptions {
  config: SecureRoundConfig;
  context: Uint8Array;
  /** Length of every client's input (secure-codec's layout). */
  inputLength: number;
  /** How long each phase after the upload may take. */
  phaseMs: number;
  /** Removes every mask a job names from the masked sum (on worker threads, in the server). */
  unmask: Unmasker;
}

/** What unmasking yields: the plain sum of the survivors' levels, and who they were. */
export interface SecureSum {
  sum: RingVector;
  survivors: number[];
  /** Time spent rebuilding secrets and removing masks. */
  unmaskMs: number;
  /** Participants whose revealed share was forged: left out of the reconstruction (the round goes on). */
  forgers: number[];
  /** Uploaders whose partner signature did not match the sharers: their input left out, as if they had dropped. */
  excluded: number[];
}

/** One participant's masked input, with its signature over the partners it masked with. */
export interface MaskedUpload {
  masked: RingVector;
  partnersSignature: Uint8Array;
}

/**
 * The server's side of one SecAgg+ round. It relays keys and encrypted shares it cannot
 * read, collects masked inputs, and in the end learns only their sum. Client messages
 * arrive through the gateway as method calls whose promises resolve when their phase
 * ends (the socket ack carries the phase's outcome); `run` drives the phases in order.
 * Any failure, or too few participants left at any phase, aborts the round: every waiting
 * client gets the error and the model is untouched.
 */
export class SecureRound {
  private readonly graph: number[][];
  private readonly indexOf: Map<string, number>;
  private readonly keys: Phase<AdvertisedKeys>;
  private shares: Phase<Array<{ index: number; bytes: Uint8Array }>> | undefined;
  private confirms: Phase<Uint8Array> | undefined;
  private reveals: Phase<RevealedShare[]> | undefined;
  // What each phase announces, already in wire form: every waiting ack gets the same bytes.
  private readonly advertised = new Announcement<Uint8Array>();
  private readonly relayed = new Announcement<(index: number) => RelayedShares>();
  private readonly survivorList = new Announcement<number[]>();
  private readonly confirmations = new Announcement<(index: number) => RelayedConfirmations>();
  /** Each survivor's signature over its partners, relayed to its neighbours with the confirmations. */
  private readonly partnerSignatures = new Map<number, Uint8Array>();
  private ads = new Map<number, AdvertisedKeys>();
  private sharers = new Set<number>();
  private survivors: number[] = [];
  /** The admitted uploads' masked inputs, summed as they arrive: the round never holds n vectors. */
  private maskedSum: RingVector | undefined;
  /** Uploaders whose partner signature did not match the sharers. */
  private readonly excluded: number[] = [];
  private failure: Error | undefined;
  /** Participants that disconnected: no later phase waits for them. */
  private readonly departed = new Set<number>();

  constructor(private readonly options: SecureRoundOptions) {
    const { config } = options;
    this.graph = roundGraph(config);
    this.indexOf = new Map(config.participants.map((p, i) => [p.clientId, i]));
    this.keys = new Phase('advertise', this.indexOf.values(), config.keysDeadline);
  }

  private get threshold(): number {
    return this.options.config.threshold;
  }

  indexFor(clientId: string): number {
    const index = this.indexOf.get(clientId);
    if (index === undefined) throw new TributaryError('NOT_A_PARTICIPANT');
    return index;
  }

  // --- client messages ----------------------------------------------------------------

  private identityKey(index: number): Uint8Array {
    return identityKeyOf(this.options.config, index)!;
  }

  advertise(clientId: string, request: AdvertiseRequest): Promise<Uint8Array> {
    const index = this.indexFor(clientId);
    const keys: AdvertisedKeys = { index, shareKey: request.shareKey, maskKey: request.maskKey, commitment: request.commitment, signature: request.signature };
    verifyAdvertisement(this.options.context, keys, this.identityKey(index));
    this.keys.submit(index, keys);
    return this.advertised.value;
  }

  async share(clientId: string, packedBoxes: Uint8Array): Promise<RelayedShares> {
    const index = this.indexFor(clientId);
    if (!this.shares) throw new TributaryError('SECAGG_OUT_OF_PHASE', 'keys are still being advertised');
    const boxes = unpackIndexed(packedBoxes, SHARE_BOX_BYTES);
    // Exactly one box for each other holder of this client's secrets: no more, no fewer.
    const holders = holdersOf(index, this.graph, new Set(this.ads.keys())).filter((h) => h !== index);
    const targets = boxes.map((b) => b.index).sort((a, b) => a - b);
    if (targets.length !== holders.length || targets.some((to, i) => to !== holders[i])) {
      throw new TributaryError('BAD_REQUEST', `shares must go to holders ${holders.join(',')}`);
    }
    this.shares.submit(index, boxes);
    return (await this.relayed.value)(index);
  }

  async survivorsFor(clientId: string): Promise<number[]> {
    const index = this.indexFor(clientId);
    if (!this.sharers.has(index)) throw new TributaryError('SECAGG_OUT_OF_PHASE', 'this client did not share keys');
    return this.survivorList.value;
  }

  async confirm(clientId: string, signature: Uint8Array): Promise<RelayedConfirmations> {
    const index = this.indexFor(clientId);
    if (!this.confirms) throw new TributaryError('SECAGG_OUT_OF_PHASE', 'survivors are not announced yet');
    if (!survivorsSigned(this.options.context, this.survivors, signature, this.identityKey(index))) {
      throw new TributaryError('SIGNATURE_INVALID', 'confirmation does not sign the announced survivors');
    }
    this.confirms.submit(index, signature);
    return (await this.confirmations.value)(index);
  }

  reveal(clientId: string, packedShares: Uint8Array): void {
    const index = this.indexFor(clientId);
    if (!this.reveals) throw new TributaryError('SECAGG_OUT_OF_PHASE', 'survivors are not confirmed yet');
    const shares = unpackIndexed(packedShares, SHARE_BYTES).map(({ index: of, bytes: share }) => ({ of, share }));
    // Exactly the owners whose shares this client holds: itself and its neighbours that shared.
    const owners = holdersOf(index, this.graph, this.sharers);
    const given = shares.map((s) => s.of).sort((a, b) => a - b);
    if (given.length !== owners.length || given.some((of, i) => of !== owners[i])) {
      throw new TributaryError('BAD_REQUEST', `reveal one share for each of ${owners.join(',')}`);
    }
    this.reveals.submit(index, shares);
  }

  /** A participant disconnected: it answers no further phase. */
  drop(clientId: string): void {
    const index = this.indexOf.get(clientId);
    if (index === undefined) return;
    this.departed.add(index);
    for (const phase of [this.keys, this.shares, this.confirms, this.reveals]) phase?.drop(index);
  }

  // --- the round ---------------------------------------------------------------------------

  private present(indices: Iterable<number>): number[] {
    return [...indices].filter((i) => !this.departed.has(i));
  }

  /** Awaits a phase; once the round is aborted nothing after it runs. */
  private async settled<T>(step: Promise<T>): Promise<T> {
    const value = await step;
    if (this.failure) throw this.failure;
    return value;
  }

  private atLeastThreshold(count: number, what: string): void {
    if (count < this.threshold) throw new TributaryError('SECAGG_TOO_FEW_SHARES', `${count} ${what}, threshold ${this.threshold}`);
  }

  /**
   * Runs the phases. `collectUploads` runs the masked-input upload for the given sharers'
   * indices, handing each upload to `admit` as it arrives, and resolves when it is over.
   */
  async run(collectUploads: (sharers: number[]) => Promise<unknown>): Promise<SecureSum> {
    const { config, phaseMs } = this.options;
    try {
      this.ads = await this.settled(this.keys.done);
      this.atLeastThreshold(this.ads.size, 'clients advertised keys');
      this.shares = new Phase('share', this.present(this.ads.keys()), config.sharesDeadline);
      this.advertised.publish(packAdvertised([...this.ads.values()]));

      const boxes = await this.settled(this.shares.done);
      this.sharers = new Set(boxes.keys());
      this.atLeastThreshold(this.sharers.size, 'clients shared keys');
      const inbox = new Map<number, Array<{ index: number; bytes: Uint8Array }>>();
      for (const [from, list] of boxes) {
        for (const { index: to, bytes } of list) {
          if (!inbox.has(to)) inbox.set(to, []);
          inbox.get(to)!.push({ index: from, bytes });
        }
      }
      const sharers = [...this.sharers];
      // A holder only gets boxes from owners that finished sharing.
      this.relayed.publish((index) => ({ boxes: packIndexed(inbox.get(index) ?? [], SHARE_BOX_BYTES), sharers }));

      this.maskedSum = newRingVector(config.ringBits, this.options.inputLength);
      await this.settled(collectUploads(sharers));
      this.survivors = [...this.partnerSignatures.keys()].sort((a, b) => a - b);
      const quorum = consistencyQuorum(config.participants.length, this.threshold);
      // Clients confirm no list that fewer than a quorum survived.
      if (this.survivors.length < quorum) throw new TributaryError('SECAGG_TOO_FEW_SHARES', `${this.survivors.length} clients uploaded, need ${quorum}`);
      this.confirms = new Phase('confirm', this.present(this.survivors), Date.now() + phaseMs);
      this.survivorList.publish(this.survivors);

      const confirmed = await this.settled(this.confirms.done);
      if (confirmed.size < quorum) throw new TributaryError('SECAGG_TOO_FEW_SHARES', `${confirmed.size} clients confirmed the survivors, need ${quorum}`);
      this.reveals = new Phase('reveal', this.present(confirmed.keys()), Date.now() + phaseMs);
      const packed = packConfirmations([...confirmed].map(([index, signature]) => ({ index, signature })));
      const survived = new Set(this.survivors);
      this.confirmations.publish((index) => ({
        confirmations: packed,
        partners: packIndexed(this.graph[index]!.filter((o) => survived.has(o)).map((o) => ({ index: o, bytes: this.partnerSignatures.get(o)! })), PARTNERS_SIGNATURE_BYTES),
      }));

      const revealed = await this.settled(this.reveals.done);
      const started = performance.now();
      const { vector: sum, forgers } = await this.unmask(revealed);
      return { sum, survivors: this.survivors, unmaskMs: performance.now() - started, forgers, excluded: [...this.excluded] };
    } catch (error) {
      this.abort(error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
  }

  /**
   * Folds a sharer's masked upload into the masked sum if its partner signature covers
   * exactly its neighbours among the sharers. Any other was masked with partners its
   * holders do not know of, and they would refuse to reveal its self seed: it is left out
   * as a drop-out (false).
   */
  admit(index: number, upload: MaskedUpload): boolean {
    if (!this.maskedSum || !this.sharers.has(index) || this.partnerSignatures.has(index)) {
      throw new TributaryError('ROUND_NOT_ACTIVE', 'this round takes no masked upload from that participant now');
    }
    if (!partnersSigned(this.options.context, partnersOf(index, this.graph, this.sharers), upload.partnersSignature, this.identityKey(index))) {
      this.excluded.push(index);
      return false;
    }
    addInto(this.maskedSum, upload.masked, this.options.config.ringBits);
    this.partnerSignatures.set(index, upload.partnersSignature);
    return true;
  }

  /** Fails every waiting client (task stopped, or the round could not finish). */
  abort(error: Error): void {
    this.failure ??= error;
    for (const announcement of [this.advertised, this.relayed, this.survivorList, this.confirmations]) announcement.fail(error);
    for (const phase of [this.keys, this.shares, this.confirms, this.reveals]) phase?.close();
  }

  private async unmask(revealed: Map<number, RevealedShare[]>): Promise<Unmasked> {
    const { config, context, inputLength } = this.options;
    const uploaded = new Set(this.survivors);
    const job = planUnmask({
      w: config.ringBits,
      m: inputLength,
      context,
      threshold: this.threshold,
      graph: this.graph,
      sharers: this.sharers,
      uploaded,
      published: (index) => this.ads.get(index)!,
      revealed: groupReveals(revealed.entries(), uploaded),
    });
    return this.options.unmask(job, this.maskedSum!);
  }
}
