import { hash, randomBytes, utf8 } from '../../shared/crypto/sodium.ts';

/**
 * Bearer secrets (session ids, API and enrollment tokens, recovery codes): 32 random bytes,
 * shown once, stored only as a BLAKE2b hash. They are high-entropy, so a fast hash is the
 * right one (a slow password hash would only slow the server).
 */
export function newSecret(prefix: string, bytes = 32): string {
  return `${prefix}_${Buffer.from(randomBytes(bytes)).toString('base64url')}`;
}

export function secretHash(secret: string): string {
  return Buffer.from(hash(utf8(secret))).toString('hex');
}
