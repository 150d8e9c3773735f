import { Type, type Static } from 'typebox';
import { concatBytes, sign, utf8, verify } from '../crypto/sodium.ts';
import { TributaryError } from '../errors.ts';
import { neighbourGraph } from './neighbours.ts';
import { MAX_SHARES } from './shamir.ts';

/**
 * The SecAgg+ protocol's vocabulary, shared by client and server: the signed round
 * config, the messages of each phase and their schemas, and the exact bytes each
 * signature covers. Phases: advertise keys → share keys → masked input (the ordinary
 * chunked upload, sealed) → confirm survivors → reveal shares. (Over 300 lines on purpose:
 * every byte a signature covers is defined here, in one place, for both sides.)
 */

const KEY = 32;
const SIGNATURE = 64;
/** A Shamir share of a 32-byte secret: the secret's length plus its x-coordinate. */
export const SHARE_BYTES = KEY + 1;
/** Plaintext of a relayed share: u32 from · u32 to · self-seed share · mask-key share. */
const SHARE_PLAIN_BYTES = 8 + 2 * SHARE_BYTES;
/** crypto_box adds a 24-byte nonce and a 16-byte MAC. */
export const SHARE_BOX_BYTES = SHARE_PLAIN_BYTES + 40;

/** Bytes, checked by length, for socket message schemas (socket.io delivers binary as Uint8Array/Buffer). */
export function Bytes(min: number, max = min) {
  return Type.Refine(
    Type.Unsafe<Uint8Array>({}),
    (v) => v instanceof Uint8Array && v.length >= min && v.length <= max,
    () => (min === max ? `expected ${min} bytes` : `expected ${min}..${max} bytes`),
  );
}

export interface SecureParticipant {
  clientId: string;
  /** Samples the client reported; updates are pre-scaled by samples / sampleScale so the sum is FedAvg's. */
  samples: number;
}

/** The secure part of a round config, signed by the server with the rest of it. */
export interface SecureRoundConfig {
  /** Index in this list is a client's id within the protocol. */
  participants: SecureParticipant[];
  /** The participants' long-term Ed25519 keys, 32 bytes each in participant order: each signs its owner's round keys. */
  identityKeys: Uint8Array;
  /** k: each client masks with and shares its secrets among k neighbours (n − 1 = classic SecAgg). */
  neighbours: number;
  /** t: shares needed to rebuild a secret, out of its k + 1 holders (the neighbours and the owner). */
  threshold: number;
  /** w: levels are summed in Z(2^w). */
  ringBits: number;
  /** Seeds the neighbour graph. */
  graphSeed: Uint8Array;
  /** Per tensor: the quantization range every client uses this round, so levels add up. */
  clips: number[];
  /**
   * What each client divides its samples by to weigh its input: the participants' mean
   * samples in one process; in a cluster round one value for every process's group, so
   * the groups' sums add up to FedAvg's.
   */
  sampleScale: number;
  keysDeadline: number;
  sharesDeadline: number;
  /** What each device does to its input before masking, since the server cannot do it to the sum. */
  input: SecureInputRules;
}

export interface SecureInputRules {
  /** L2 bound on each device's (sample-scaled) input; 0 = none. */
  normBound: number;
  /**
   * Distributed DP: the Skellam variance each device adds to every value (in levels²), and
   * the fewest survivors whose sum carries the task's noise; a device reveals nothing for a
   * smaller survivor set. Null: no noise.
   */
  noise: { variance: number; minSurvivors: number } | null;
}

/** Participant `index`'s identity key, or undefined when there is no such participant. */
export function identityKeyOf(config: SecureRoundConfig, index: number): Uint8Array | undefined {
  if (!Number.isInteger(index) || index < 0 || index >= config.participants.length) return undefined;
  if (config.identityKeys.length !== KEY * config.participants.length) throw new TributaryError('BAD_REQUEST', 'identity keys do not match the participants');
  return config.identityKeys.subarray(KEY * index, KEY * (index + 1));
}

/** Every client's neighbours in the round's graph (indices into participants). */
export function roundGraph(config: SecureRoundConfig): number[][] {
  return neighbourGraph(config.participants.length, config.neighbours, config.graphSeed);
}

/** Who holds shares of `owner`'s secrets: itself and its neighbours that advertised keys, ascending. */
export function holdersOf(owner: number, graph: readonly number[][], advertised: ReadonlySet<number>): number[] {
  return [owner, ...graph[owner]!.filter((v) => advertised.has(v))].sort((a, b) => a - b);
}

/**
 * What every client signature of the round covers first: task, round and the round's
 * aggregator key, which is fresh each round. A message signed in another round (or a
 * restarted task's same-numbered round) does not verify here.
 */
export function roundContext(taskId: number, round: number, aggregatorKey: Uint8Array): Uint8Array {
  return concatBytes(utf8(`tributary/secagg/v1/${taskId}/${round}/`), aggregatorKey);
}

function u32s(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(4 * values.length);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setUint32(4 * i, v));
  return out;
}

/**
 * Fixed-size records, each behind a u32 participant index, packed into one buffer.
 * socket.io refuses packets with more than 10 binary attachments (a sensible guard
 * against floods), and one buffer per message is also cheaper than n small ones.
 */
export function packIndexed(records: ReadonlyArray<{ index: number; bytes: Uint8Array }>, size: number): Uint8Array {
  const out = new Uint8Array(records.length * (4 + size));
  const view = new DataView(out.buffer);
  records.forEach(({ index, bytes }, i) => {
    if (bytes.length !== size) throw new TributaryError('INTERNAL', `record of ${bytes.length} bytes, expected ${size}`);
    view.setUint32(i * (4 + size), index);
    out.set(bytes, i * (4 + size) + 4);
  });
  return out;
}

export function unpackIndexed(packed: Uint8Array, size: number): Array<{ index: number; bytes: Uint8Array }> {
  if (!(packed instanceof Uint8Array) || packed.length % (4 + size) !== 0) {
    throw new TributaryError('BAD_REQUEST', `packed records must be a multiple of ${4 + size} bytes`);
  }
  const view = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  const out: Array<{ index: number; bytes: Uint8Array }> = [];
  for (let at = 0; at < packed.length; at += 4 + size) out.push({ index: view.getUint32(at), bytes: packed.slice(at + 4, at + 4 + size) });
  return out;
}

// --- Phase 1: advertise keys ---------------------------------------------------------

export const AdvertiseRequest = Type.Object(
  {
    taskId: Type.Integer({ minimum: 1 }),
    round: Type.Integer({ minimum: 1 }),
    /** X25519 key for receiving shares. */
    shareKey: Bytes(KEY),
    /** X25519 key for pairwise mask agreement. */
    maskKey: Bytes(KEY),
    /** BLAKE2b of the self-mask seed: lets the server check the seed it rebuilds. */
    commitment: Bytes(KEY),
    /** Ed25519 by the client's identity over roundContext ‖ index ‖ both keys ‖ commitment. */
    signature: Bytes(SIGNATURE),
  },
  { additionalProperties: false },
);
export type AdvertiseRequest = Static<typeof AdvertiseRequest>;

export interface AdvertisedKeys {
  index: number;
  shareKey: Uint8Array;
  maskKey: Uint8Array;
  commitment: Uint8Array;
  signature: Uint8Array;
}

const ADVERTISED_BYTES = 3 * KEY + SIGNATURE;

export function packAdvertised(list: readonly AdvertisedKeys[]): Uint8Array {
  return packIndexed(list.map((k) => ({ index: k.index, bytes: concatBytes(k.shareKey, k.maskKey, k.commitment, k.signature) })), ADVERTISED_BYTES);
}

export function unpackAdvertised(packed: Uint8Array): AdvertisedKeys[] {
  return unpackIndexed(packed, ADVERTISED_BYTES).map(({ index, bytes }) => ({
    index,
    shareKey: bytes.subarray(0, KEY),
    maskKey: bytes.subarray(KEY, 2 * KEY),
    commitment: bytes.subarray(2 * KEY, 3 * KEY),
    signature: bytes.subarray(3 * KEY),
  }));
}

function advertisedBytes(context: Uint8Array, keys: Omit<AdvertisedKeys, 'signature'>): Uint8Array {
  return concatBytes(utf8('advertise'), context, u32s([keys.index]), keys.shareKey, keys.maskKey, keys.commitment);
}

export function signAdvertisement(context: Uint8Array, keys: Omit<AdvertisedKeys, 'signature'>, identitySecretKey: Uint8Array): AdvertisedKeys {
  return { ...keys, signature: sign(advertisedBytes(context, keys), identitySecretKey) };
}

/** SIGNATURE_INVALID unless `identityKey` signed exactly these keys for this round and index. */
export function verifyAdvertisement(context: Uint8Array, keys: AdvertisedKeys, identityKey: Uint8Array): void {
  if (!verify(keys.signature, advertisedBytes(context, keys), identityKey)) {
    throw new TributaryError('SIGNATURE_INVALID', `round keys of participant ${keys.index} are not signed by its identity`);
  }
}

// --- Phase 2: share keys ---------------------------------------------------------------

export const ShareRequest = Type.Object(
  {
    taskId: Type.Integer({ minimum: 1 }),
    round: Type.Integer({ minimum: 1 }),
    /** One crypto_box per other holder of this client's secrets, packed (packIndexed by recipient, SHARE_BOX_BYTES each). */
    boxes: Bytes(0, MAX_SHARES * (4 + SHARE_BOX_BYTES)),
  },
  { additionalProperties: false },
);
export type ShareRequest = Static<typeof ShareRequest>;

export interface RelayedShares {
  /** The boxes addressed to this client, packed (packIndexed by sender, SHARE_BOX_BYTES each). */
  boxes: Uint8Array;
  /** Everyone who shared keys (U2): the clients to mask with. */
  sharers: number[];
}

export interface SharePlain {
  from: number;
  to: number;
  selfSeedShare: Uint8Array;
  maskKeyShare: Uint8Array;
}

export function encodeSharePlain(p: SharePlain): Uint8Array {
  return concatBytes(u32s([p.from, p.to]), p.selfSeedShare, p.maskKeyShare);
}

export function decodeSharePlain(bytes: Uint8Array): SharePlain {
  if (bytes.length !== SHARE_PLAIN_BYTES) throw new TributaryError('BAD_REQUEST', `share is ${bytes.length} bytes, expected ${SHARE_PLAIN_BYTES}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    from: view.getUint32(0),
    to: view.getUint32(4),
    selfSeedShare: bytes.slice(8, 8 + SHARE_BYTES),
    maskKeyShare: bytes.slice(8 + SHARE_BYTES),
  };
}

// --- Phase 4: consistency check --------------------------------------------------------

export const RoundRef = Type.Object(
  { taskId: Type.Integer({ minimum: 1 }), round: Type.Integer({ minimum: 1 }) },
  { additionalProperties: false },
);
export type RoundRef = Static<typeof RoundRef>;

export const ConfirmRequest = Type.Object(
  {
    taskId: Type.Integer({ minimum: 1 }),
    round: Type.Integer({ minimum: 1 }),
    /** Ed25519 by the client's identity over the survivor list the server announced. */
    signature: Bytes(SIGNATURE),
  },
  { additionalProperties: false },
);
export type ConfirmRequest = Static<typeof ConfirmRequest>;

export interface Confirmation {
  index: number;
  signature: Uint8Array;
}

export function packConfirmations(list: readonly Confirmation[]): Uint8Array {
  return packIndexed(list.map((c) => ({ index: c.index, bytes: c.signature })), SIGNATURE);
}

export function unpackConfirmations(packed: Uint8Array): Confirmation[] {
  return unpackIndexed(packed, SIGNATURE).map(({ index, bytes }) => ({ index, signature: bytes }));
}

/**
 * The confirm phase's answer to one client: a quorum's signatures on the survivor list, and
 * the partner-set signatures of its neighbours among the survivors, by owner (its reveal checks
 * each against its own view before it reveals that owner's self-seed share).
 */
export interface RelayedConfirmations {
  confirmations: Uint8Array;
  partners: Uint8Array;
}

function survivorsBytes(context: Uint8Array, survivors: readonly number[]): Uint8Array {
  return concatBytes(utf8('survivors'), context, u32s(survivors));
}

export function signSurvivors(context: Uint8Array, survivors: readonly number[], identitySecretKey: Uint8Array): Uint8Array {
  return sign(survivorsBytes(context, survivors), identitySecretKey);
}

export function survivorsSigned(context: Uint8Array, survivors: readonly number[], signature: Uint8Array, identityKey: Uint8Array): boolean {
  return verify(signature, survivorsBytes(context, survivors), identityKey);
}

// --- Phase 3's proof: whom a client masked with --------------------------------------------

/**
 * A client's masked upload starts with its identity signature over the partners it masked
 * with (its neighbours among the sharers it was shown). A holder reveals an owner's
 * self-seed share only if that signature covers the owner's partners as the holder itself
 * sees them, so a server that told the owner fewer sharers than it told the holder cannot
 * use the holder to unmask the owner (docs/design.md, "Threat model").
 */
export const PARTNERS_SIGNATURE_BYTES = SIGNATURE;

function partnersBytes(context: Uint8Array, partners: readonly number[]): Uint8Array {
  return concatBytes(utf8('partners'), context, u32s([...partners].sort((a, b) => a - b)));
}

export function signPartners(context: Uint8Array, partners: readonly number[], identitySecretKey: Uint8Array): Uint8Array {
  return sign(partnersBytes(context, partners), identitySecretKey);
}

export function partnersSigned(context: Uint8Array, partners: readonly number[], signature: Uint8Array, identityKey: Uint8Array): boolean {
  return verify(signature, partnersBytes(context, partners), identityKey);
}

/** The plaintext a secure upload seals: the partner signature, then the ring-encoded masked input. */
export function encodeMaskedUpload(partnersSignature: Uint8Array, ring: Uint8Array): Uint8Array {
  return concatBytes(partnersSignature, ring);
}

export function decodeMaskedUpload(plain: Uint8Array): { partnersSignature: Uint8Array; ring: Uint8Array } {
  if (plain.length < PARTNERS_SIGNATURE_BYTES) throw new TributaryError('UPDATE_MALFORMED', 'a secure upload starts with its partner signature');
  return { partnersSignature: plain.subarray(0, PARTNERS_SIGNATURE_BYTES), ring: plain.subarray(PARTNERS_SIGNATURE_BYTES) };
}

/** The neighbours of `owner` that shared: whom it masks with. */
export function partnersOf(owner: number, graph: readonly number[][], sharers: ReadonlySet<number>): number[] {
  return graph[owner]!.filter((v) => sharers.has(v));
}

// --- Phase 5: reveal shares --------------------------------------------------------------

export const RevealRequest = Type.Object(
  {
    taskId: Type.Integer({ minimum: 1 }),
    round: Type.Integer({ minimum: 1 }),
    /**
     * For each client whose shares this one holds: its self-seed share if it uploaded, else
     * its mask-key share; packIndexed by owner, SHARE_BYTES each.
     */
    shares: Bytes(0, MAX_SHARES * (4 + SHARE_BYTES)),
  },
  { additionalProperties: false },
);
export type RevealRequest = Static<typeof RevealRequest>;
export interface RevealedShare {
  of: number;
  share: Uint8Array;
}
