import sodium from 'libsodium-wrappers';
import { TributaryError } from '../errors.ts';
import { nodeCrypto, type NodeCrypto, type NodeKey } from './node-crypto.ts';

/**
 * The one wrapper over libsodium: nothing else in Tributary imports it, so every
 * primitive, key size and failure mode is decided here. (X25519 here and the mask stream
 * in mask-stream.ts have node:crypto fast paths, each checked against libsodium before it
 * is used.) Await `cryptoReady()` once (libsodium instantiates its WebAssembly
 * asynchronously); everything else is synchronous.
 *
 * (Over 300 lines on purpose: keeping every primitive in this one module is what lets
 * nothing else import libsodium.)
 */

export interface KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

const KEY_BYTES = 32; // X25519 public and secret keys, Ed25519 public keys, mask seeds
const SIGN_SECRET_BYTES = 64;
const SIGNATURE_BYTES = 64;
const BOX_NONCE_BYTES = 24;
const BOX_MAC_BYTES = 16;
/** crypto_box_seal adds an ephemeral public key and a MAC. */
export const SEAL_OVERHEAD_BYTES = 48;

let ready = false;

export async function cryptoReady(): Promise<void> {
  await sodium.ready;
  ready = true;
  nodeScalarMult ??= probeNodeScalarMult();
}

/** X25519(sk, theirPk); `pk` is sk's own public key. Throws on a low-order peer key. */
type ScalarMult = (sk: Uint8Array, pk: Uint8Array, theirPk: Uint8Array) => Uint8Array;

/**
 * X25519 through OpenSSL (node:crypto): about twice as fast as libsodium's WebAssembly,
 * which matters when a client agrees seeds with hundreds of neighbours or the server
 * rebuilds a dropped client's seeds with every survivor. Keys are imported as JWK (DER
 * parsing would cost more than the multiplication) and the last secret key stays imported,
 * since those callers use one secret key with many peers.
 */
function makeNodeScalarMult(crypto: NodeCrypto): ScalarMult {
  const b64 = (bytes: Uint8Array) => sodium.to_base64(bytes, sodium.base64_variants.URLSAFE_NO_PADDING);
  let last: { sk: Uint8Array; key: NodeKey } | undefined;
  return (sk, pk, theirPk) => {
    if (!last || !equalBytes(last.sk, sk)) {
      last = { sk: sk.slice(), key: crypto.createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64(sk), x: b64(pk) }, format: 'jwk' }) };
    }
    const peer = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64(theirPk) }, format: 'jwk' });
    return new Uint8Array(crypto.diffieHellman({ privateKey: last.key, publicKey: peer }));
  };
}

/** The Node path, only if it reproduces libsodium here (and refuses a low-order key as libsodium does). */
function probeNodeScalarMult(): ScalarMult | null {
  const crypto = nodeCrypto();
  if (!crypto) return null;
  try {
    const mult = makeNodeScalarMult(crypto);
    const a = sodium.crypto_box_seed_keypair(new Uint8Array(32).fill(1));
    const b = sodium.crypto_box_seed_keypair(new Uint8Array(32).fill(2));
    if (!equalBytes(mult(a.privateKey, a.publicKey, b.publicKey), sodium.crypto_scalarmult(a.privateKey, b.publicKey))) return null;
    try {
      mult(a.privateKey, a.publicKey, new Uint8Array(32));
      return null;
    } catch {
      return mult;
    }
  } catch {
    return null;
  }
}

let nodeScalarMult: ScalarMult | null | undefined;

/** Which X25519 implementation agreeSeed uses here (for tests and benchmarks). */
export function keyAgreementPath(): 'node' | 'libsodium' {
  return nodeScalarMult ? 'node' : 'libsodium';
}

const sodiumScalarMult: ScalarMult = (sk, _pk, theirPk) => sodium.crypto_scalarmult(sk, theirPk);

function lib(): typeof sodium {
  // libsodium's functions are undefined until it is ready; say so instead of a TypeError.
  if (!ready) throw new TributaryError('INTERNAL', 'await cryptoReady() before using crypto');
  return sodium;
}

function checkKey(key: Uint8Array, bytes: number, what: string): void {
  if (!(key instanceof Uint8Array) || key.length !== bytes) {
    throw new TributaryError('KEY_INVALID', `${what} must be ${bytes} bytes`);
  }
}

export function generateSigningKeyPair(): KeyPair {
  const kp = lib().crypto_sign_keypair();
  return { publicKey: kp.publicKey, secretKey: kp.privateKey };
}

/** An Ed25519 identity derived from a 32-byte seed: for devices that keep a seed rather than a key file. */
export function signingKeyPairFromSeed(seed: Uint8Array): KeyPair {
  checkKey(seed, KEY_BYTES, 'identity seed');
  const kp = lib().crypto_sign_seed_keypair(seed);
  return { publicKey: kp.publicKey, secretKey: kp.privateKey };
}

/** Ed25519, detached: the 64-byte signature alone. */
export function sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  const s = lib();
  checkKey(secretKey, SIGN_SECRET_BYTES, 'signing secret key');
  return s.crypto_sign_detached(message, secretKey);
}

/** False, never an exception, for any malformed input: callers decide what to throw. */
export function verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  const s = lib();
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES) return false;
  if (!(message instanceof Uint8Array)) return false;
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== KEY_BYTES) return false;
  try {
    return s.crypto_sign_verify_detached(signature, message, publicKey);
  } catch {
    return false;
  }
}

export function generateBoxKeyPair(): KeyPair {
  const kp = lib().crypto_box_keypair();
  return { publicKey: kp.publicKey, secretKey: kp.privateKey };
}

/** The X25519 public key of a secret key: lets a server check a reconstructed key. */
export function boxPublicKey(secretKey: Uint8Array): Uint8Array {
  const s = lib();
  checkKey(secretKey, KEY_BYTES, 'box secret key');
  return s.crypto_scalarmult_base(secretKey);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/**
 * A 32-byte seed both ends of a pair derive alike: BLAKE2b(X25519(sk, pk') ‖ lower pk ‖
 * higher pk ‖ context). Hashing the raw point with both public keys is libsodium's advice
 * for X25519 (the point alone has fewer than 256 bits of entropy and is malleable); the
 * sorted order makes it symmetric, the context separates rounds and purposes.
 */
export function agreeSeed(
  mySecretKey: Uint8Array,
  myPublicKey: Uint8Array,
  theirPublicKey: Uint8Array,
  context: Uint8Array,
): Uint8Array {
  const s = lib();
  checkKey(mySecretKey, KEY_BYTES, 'box secret key');
  checkKey(myPublicKey, KEY_BYTES, 'own public key');
  checkKey(theirPublicKey, KEY_BYTES, 'peer public key');
  let point: Uint8Array;
  try {
    point = (nodeScalarMult ?? sodiumScalarMult)(mySecretKey, myPublicKey, theirPublicKey);
  } catch {
    // Both refuse an all-zero result, i.e. a low-order peer key.
    throw new TributaryError('KEY_INVALID', 'peer public key is a low-order point');
  }
  const mineFirst = compareBytes(myPublicKey, theirPublicKey) <= 0;
  const input = concatBytes(point, mineFirst ? myPublicKey : theirPublicKey, mineFirst ? theirPublicKey : myPublicKey, context);
  const seed = s.crypto_generichash(KEY_BYTES, input, null);
  s.memzero(point);
  s.memzero(input);
  return seed;
}

/** crypto_box (X25519 + XSalsa20-Poly1305) with a random nonce prepended. */
export function boxEncrypt(plain: Uint8Array, theirPublicKey: Uint8Array, mySecretKey: Uint8Array): Uint8Array {
  const s = lib();
  checkKey(theirPublicKey, KEY_BYTES, 'recipient public key');
  checkKey(mySecretKey, KEY_BYTES, 'box secret key');
  const nonce = s.randombytes_buf(BOX_NONCE_BYTES);
  let cipher: Uint8Array;
  try {
    cipher = s.crypto_box_easy(plain, nonce, theirPublicKey, mySecretKey);
  } catch {
    throw new TributaryError('KEY_INVALID', 'recipient public key is a low-order point');
  }
  return concatBytes(nonce, cipher);
}

export function boxDecrypt(cipher: Uint8Array, theirPublicKey: Uint8Array, mySecretKey: Uint8Array): Uint8Array {
  const s = lib();
  checkKey(theirPublicKey, KEY_BYTES, 'sender public key');
  checkKey(mySecretKey, KEY_BYTES, 'box secret key');
  if (!(cipher instanceof Uint8Array) || cipher.length < BOX_NONCE_BYTES + BOX_MAC_BYTES) {
    throw new TributaryError('DECRYPTION_FAILED', 'box is too short');
  }
  try {
    return s.crypto_box_open_easy(cipher.subarray(BOX_NONCE_BYTES), cipher.subarray(0, BOX_NONCE_BYTES), theirPublicKey, mySecretKey);
  } catch {
    throw new TributaryError('DECRYPTION_FAILED', 'box does not authenticate');
  }
}

/** Anonymous sealed box: only the recipient can open it, and learns nothing of the sender. */
export function seal(plain: Uint8Array, recipientPublicKey: Uint8Array): Uint8Array {
  const s = lib();
  checkKey(recipientPublicKey, KEY_BYTES, 'recipient public key');
  try {
    return s.crypto_box_seal(plain, recipientPublicKey);
  } catch {
    throw new TributaryError('KEY_INVALID', 'recipient public key is a low-order point');
  }
}

export function openSealed(cipher: Uint8Array, recipient: KeyPair): Uint8Array {
  const s = lib();
  checkKey(recipient.publicKey, KEY_BYTES, 'recipient public key');
  checkKey(recipient.secretKey, KEY_BYTES, 'recipient secret key');
  if (!(cipher instanceof Uint8Array) || cipher.length < SEAL_OVERHEAD_BYTES) {
    throw new TributaryError('DECRYPTION_FAILED', 'sealed box is too short');
  }
  try {
    return s.crypto_box_seal_open(cipher, recipient.publicKey, recipient.secretKey);
  } catch {
    throw new TributaryError('DECRYPTION_FAILED', 'sealed box does not authenticate');
  }
}

/** crypto_secretbox (XSalsa20-Poly1305) keys: secrets the server keeps for itself, e.g. TOTP seeds at rest. */
export const SECRETBOX_KEY_BYTES = 32;

/** crypto_secretbox with a random nonce prepended (random 24-byte nonces never repeat in practice). */
export function secretboxEncrypt(plain: Uint8Array, key: Uint8Array): Uint8Array {
  const s = lib();
  checkKey(key, SECRETBOX_KEY_BYTES, 'secretbox key');
  const nonce = s.randombytes_buf(BOX_NONCE_BYTES);
  return concatBytes(nonce, s.crypto_secretbox_easy(plain, nonce, key));
}

export function secretboxDecrypt(cipher: Uint8Array, key: Uint8Array): Uint8Array {
  const s = lib();
  checkKey(key, SECRETBOX_KEY_BYTES, 'secretbox key');
  if (!(cipher instanceof Uint8Array) || cipher.length < BOX_NONCE_BYTES + BOX_MAC_BYTES) {
    throw new TributaryError('DECRYPTION_FAILED', 'secretbox is too short');
  }
  try {
    return s.crypto_secretbox_open_easy(cipher.subarray(BOX_NONCE_BYTES), cipher.subarray(0, BOX_NONCE_BYTES), key);
  } catch {
    throw new TributaryError('DECRYPTION_FAILED', 'secretbox does not authenticate');
  }
}

export function randomBytes(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0) throw new TributaryError('INTERNAL', `cannot draw ${n} random bytes`);
  return lib().randombytes_buf(n);
}

/** BLAKE2b; `length` in 16..64. */
export function hash(bytes: Uint8Array, length = 32): Uint8Array {
  const s = lib();
  if (!Number.isInteger(length) || length < 16 || length > 64) {
    throw new TributaryError('INTERNAL', `hash length must be 16..64 bytes, got ${length}`);
  }
  return s.crypto_generichash(length, bytes, null);
}

/** 64 bits of a key's hash as `abcd:ef01:2345:6789`, for people comparing keys by eye. */
export function fingerprint(publicKey: Uint8Array): string {
  const hex = lib().to_hex(hash(publicKey, 16).subarray(0, 8));
  return hex.match(/.{4}/g)!.join(':');
}

/** Standard, padded base64 (what Node's Buffer and browsers' atob read). */
export function toBase64(bytes: Uint8Array): string {
  const s = lib();
  return s.to_base64(bytes, s.base64_variants.ORIGINAL);
}

export function fromBase64(text: string): Uint8Array {
  const s = lib();
  if (typeof text !== 'string') throw new TributaryError('BAD_REQUEST', 'base64 input is not a string');
  try {
    return s.from_base64(text, s.base64_variants.ORIGINAL);
  } catch {
    throw new TributaryError('BAD_REQUEST', 'invalid base64');
  }
}

/** UTF-8 bytes of a string (shared/ has neither DOM nor Node globals like TextEncoder). */
export function utf8(text: string): Uint8Array {
  return sodium.from_string(text);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Constant-time for equal lengths (lengths themselves are not secret here). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  if (a.length === 0) return true;
  return lib().memcmp(a, b);
}

/**
 * libsodium's deterministic generator: ChaCha20-IETF keyed by the 32-byte seed, nonce
 * "LibsodiumDRG", block counter from 0. shared/mask-stream.ts reproduces it with node:crypto.
 */
export function expandSeedSodium(seed: Uint8Array, bytes: number): Uint8Array {
  const s = lib();
  if (!(seed instanceof Uint8Array) || seed.length !== KEY_BYTES) {
    throw new TributaryError('INTERNAL', `mask seed must be ${KEY_BYTES} bytes`);
  }
  if (!Number.isInteger(bytes) || bytes < 0) throw new TributaryError('INTERNAL', `cannot expand to ${bytes} bytes`);
  return s.randombytes_buf_deterministic(bytes, seed);
}
