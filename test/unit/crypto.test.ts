import sodium from 'libsodium-wrappers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  agreeSeed,
  keyAgreementPath,
  boxDecrypt,
  boxEncrypt,
  boxPublicKey,
  concatBytes,
  cryptoReady,
  equalBytes,
  fingerprint,
  fromBase64,
  generateBoxKeyPair,
  generateSigningKeyPair,
  hash,
  openSealed,
  randomBytes,
  seal,
  SEAL_OVERHEAD_BYTES,
  sign,
  toBase64,
  verify,
} from '../../shared/crypto/sodium.ts';
import { expectCode } from '../support/expect-code.ts';

const text = (s: string) => new TextEncoder().encode(s);

function flipped(bytes: Uint8Array, index: number, bit = 0): Uint8Array {
  const out = bytes.slice();
  out[index] = out[index]! ^ (1 << bit);
  return out;
}

describe('before cryptoReady()', () => {
  it('refuses to run rather than failing with a TypeError', () => {
    expectCode(() => randomBytes(4), 'INTERNAL');
  });
});

describe('crypto', () => {
  beforeAll(async () => {
    await cryptoReady();
    await cryptoReady(); // idempotent
  });

  describe('signatures', () => {
    it('verifies its own detached signature', () => {
      const kp = generateSigningKeyPair();
      const message = text('round 7 config');
      const signature = sign(message, kp.secretKey);
      expect(signature).toHaveLength(64);
      expect(verify(signature, message, kp.publicKey)).toBe(true);
    });

    it('rejects a message, signature or key with one flipped bit', () => {
      const kp = generateSigningKeyPair();
      const message = text('weights v3');
      const signature = sign(message, kp.secretKey);
      expect(verify(signature, flipped(message, 0), kp.publicKey)).toBe(false);
      expect(verify(flipped(signature, 10, 3), message, kp.publicKey)).toBe(false);
      expect(verify(signature, message, flipped(kp.publicKey, 5))).toBe(false);
      expect(verify(signature, message, generateSigningKeyPair().publicKey)).toBe(false);
    });

    it('returns false instead of throwing on malformed input', () => {
      const kp = generateSigningKeyPair();
      const message = text('x');
      const signature = sign(message, kp.secretKey);
      expect(verify(signature.subarray(0, 63), message, kp.publicKey)).toBe(false);
      expect(verify(signature, message, kp.publicKey.subarray(1))).toBe(false);
      expect(verify(new Uint8Array(64), message, new Uint8Array(32))).toBe(false);
      expect(verify('nope' as unknown as Uint8Array, message, kp.publicKey)).toBe(false);
    });

    it('refuses a signing key of the wrong size', () => {
      expectCode(() => sign(text('x'), new Uint8Array(32)), 'KEY_INVALID');
    });
  });

  describe('crypto_box', () => {
    it('round-trips between two key pairs, with a fresh nonce each time', () => {
      const alice = generateBoxKeyPair();
      const bob = generateBoxKeyPair();
      const plain = text('share of client 4');
      const a = boxEncrypt(plain, bob.publicKey, alice.secretKey);
      const b = boxEncrypt(plain, bob.publicKey, alice.secretKey);
      expect(equalBytes(a, b)).toBe(false);
      expect(boxDecrypt(a, alice.publicKey, bob.secretKey)).toEqual(plain);
      expect(boxDecrypt(b, bob.publicKey, alice.secretKey)).toEqual(plain); // symmetric key
    });

    it('throws DECRYPTION_FAILED for a tampered, truncated or misdirected box', () => {
      const alice = generateBoxKeyPair();
      const bob = generateBoxKeyPair();
      const box = boxEncrypt(text('secret'), bob.publicKey, alice.secretKey);
      expectCode(() => boxDecrypt(flipped(box, box.length - 1), alice.publicKey, bob.secretKey), 'DECRYPTION_FAILED');
      expectCode(() => boxDecrypt(flipped(box, 0), alice.publicKey, bob.secretKey), 'DECRYPTION_FAILED'); // nonce
      expectCode(() => boxDecrypt(box.subarray(0, 39), alice.publicKey, bob.secretKey), 'DECRYPTION_FAILED');
      expectCode(() => boxDecrypt(box, alice.publicKey, generateBoxKeyPair().secretKey), 'DECRYPTION_FAILED');
    });

    it('refuses a low-order recipient key', () => {
      expectCode(() => boxEncrypt(text('x'), new Uint8Array(32), generateBoxKeyPair().secretKey), 'KEY_INVALID');
    });
  });

  describe('sealed boxes', () => {
    it('opens for the recipient only, with 48 bytes of overhead', () => {
      const server = generateBoxKeyPair();
      const plain = randomBytes(1000);
      const sealed = seal(plain, server.publicKey);
      expect(sealed).toHaveLength(plain.length + SEAL_OVERHEAD_BYTES);
      expect(openSealed(sealed, server)).toEqual(plain);
      expectCode(() => openSealed(sealed, generateBoxKeyPair()), 'DECRYPTION_FAILED');
    });

    it('throws DECRYPTION_FAILED for a tampered or truncated sealed box', () => {
      const server = generateBoxKeyPair();
      const sealed = seal(text('update'), server.publicKey);
      for (const i of [0, 40, sealed.length - 1]) expectCode(() => openSealed(flipped(sealed, i), server), 'DECRYPTION_FAILED');
      expectCode(() => openSealed(sealed.subarray(0, 47), server), 'DECRYPTION_FAILED');
    });
  });

  describe('agreeSeed', () => {
    const ctx = text('round-1');

    it('gives both ends of a pair the same 32-byte seed', () => {
      const a = generateBoxKeyPair();
      const b = generateBoxKeyPair();
      const ab = agreeSeed(a.secretKey, a.publicKey, b.publicKey, ctx);
      expect(ab).toHaveLength(32);
      expect(agreeSeed(b.secretKey, b.publicKey, a.publicKey, ctx)).toEqual(ab);
    });

    it('separates contexts and pairs', () => {
      const a = generateBoxKeyPair();
      const b = generateBoxKeyPair();
      const c = generateBoxKeyPair();
      const ab = agreeSeed(a.secretKey, a.publicKey, b.publicKey, ctx);
      expect(equalBytes(ab, agreeSeed(a.secretKey, a.publicKey, b.publicKey, text('round-2')))).toBe(false);
      expect(equalBytes(ab, agreeSeed(a.secretKey, a.publicKey, c.publicKey, ctx))).toBe(false);
    });

    it('runs X25519 through node:crypto in Node, equal to libsodium for every pair and key order', () => {
      expect(keyAgreementPath()).toBe('node');
      const keys = Array.from({ length: 12 }, () => generateBoxKeyPair());
      for (const a of keys) {
        for (const b of keys) {
          if (a === b) continue;
          // The reference: libsodium's own scalar multiplication, hashed as agreeSeed documents.
          const point = sodium.crypto_scalarmult(a.secretKey, b.publicKey);
          const [lo, hi] = Buffer.compare(Buffer.from(a.publicKey), Buffer.from(b.publicKey)) <= 0 ? [a.publicKey, b.publicKey] : [b.publicKey, a.publicKey];
          const expected = sodium.crypto_generichash(32, concatBytes(point, lo, hi, ctx), null);
          expect(agreeSeed(a.secretKey, a.publicKey, b.publicKey, ctx)).toEqual(expected);
        }
      }
    });

    it('rejects a low-order or malformed peer key with KEY_INVALID', () => {
      const a = generateBoxKeyPair();
      const lowOrder = new Uint8Array(32);
      lowOrder[0] = 1; // the point of order 1
      expectCode(() => agreeSeed(a.secretKey, a.publicKey, new Uint8Array(32), ctx), 'KEY_INVALID');
      expectCode(() => agreeSeed(a.secretKey, a.publicKey, lowOrder, ctx), 'KEY_INVALID');
      expectCode(() => agreeSeed(a.secretKey, a.publicKey, new Uint8Array(31), ctx), 'KEY_INVALID');
    });
  });

  describe('helpers', () => {
    it('derives a box public key from its secret key', () => {
      const kp = generateBoxKeyPair();
      expect(boxPublicKey(kp.secretKey)).toEqual(kp.publicKey);
    });

    it('fingerprints a key as four groups of four hex digits, stable per key', () => {
      const kp = generateSigningKeyPair();
      const f = fingerprint(kp.publicKey);
      expect(f).toMatch(/^[0-9a-f]{4}(:[0-9a-f]{4}){3}$/);
      expect(fingerprint(kp.publicKey)).toBe(f);
      expect(fingerprint(generateSigningKeyPair().publicKey)).not.toBe(f);
    });

    it('round-trips base64 and rejects invalid text with BAD_REQUEST', () => {
      const bytes = randomBytes(31);
      const b64 = toBase64(bytes);
      expect(b64).toBe(Buffer.from(bytes).toString('base64'));
      expect(fromBase64(b64)).toEqual(bytes);
      expectCode(() => fromBase64('a!b'), 'BAD_REQUEST');
      expectCode(() => fromBase64(`${b64}x`), 'BAD_REQUEST');
    });

    it('hashes with BLAKE2b at the requested length', () => {
      expect(hash(text('abc'))).toHaveLength(32);
      expect(hash(text('abc'), 64)).toHaveLength(64);
      expect(hash(text('abc'))).toEqual(hash(text('abc')));
      expect(equalBytes(hash(text('abc')), hash(text('abd')))).toBe(false);
      expectCode(() => hash(text('abc'), 8), 'INTERNAL');
    });

    it('concatenates and compares bytes', () => {
      const joined = concatBytes(Uint8Array.of(1, 2), new Uint8Array(0), Uint8Array.of(3));
      expect(joined).toEqual(Uint8Array.of(1, 2, 3));
      expect(equalBytes(joined, Uint8Array.of(1, 2, 3))).toBe(true);
      expect(equalBytes(joined, Uint8Array.of(1, 2, 4))).toBe(false);
      expect(equalBytes(joined, Uint8Array.of(1, 2))).toBe(false);
      expect(equalBytes(new Uint8Array(0), new Uint8Array(0))).toBe(true);
    });

    it('draws fresh random bytes', () => {
      expect(randomBytes(0)).toHaveLength(0);
      expect(equalBytes(randomBytes(32), randomBytes(32))).toBe(false);
    });
  });
});
