import { expandSeedSodium } from '../crypto/sodium.ts';
import { TributaryError } from '../errors.ts';
import { nodeCrypto, type NodeCrypto } from '../crypto/node-crypto.ts';

/**
 * Mask expansion: a 32-byte seed becomes the keystream of libsodium's
 * `randombytes_buf_deterministic` (ChaCha20-IETF, key = seed, nonce "LibsodiumDRG",
 * block counter from 0). Browsers run it in libsodium's WebAssembly; Node runs the same
 * stream through OpenSSL, several times faster, and a test proves the two bit-identical.
 */

/** Successive blocks of one seed's keystream: each call returns the next `bytes` bytes. */
export type KeystreamReader = (bytes: number) => Uint8Array;

/**
 * Expands `seed` to `bytes` bytes. An expander that can also stream (`open`) lets the
 * masking code work in cache-sized blocks instead of materializing a whole vector per seed.
 */
export type SeedExpander = ((seed: Uint8Array, bytes: number) => Uint8Array) & {
  readonly open?: (seed: Uint8Array) => KeystreamReader;
};


const SEED_BYTES = 32;
/** Zeros are encrypted a block at a time; 64 KiB keeps input and output in L2. */
const BLOCK_BYTES = 64 * 1024;


/** OpenSSL's 16-byte ChaCha20 IV: 32-bit little-endian block counter, then the 96-bit nonce. */
const IV = new Uint8Array([0, 0, 0, 0, ...Array.from('LibsodiumDRG', (c) => c.charCodeAt(0))]);

let zeros = new Uint8Array(0);
function zeroBlock(bytes: number): Uint8Array {
  if (zeros.length < bytes) zeros = new Uint8Array(Math.max(bytes, BLOCK_BYTES));
  return zeros.subarray(0, bytes);
}

function checkSeed(seed: Uint8Array, bytes?: number): void {
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_BYTES) {
    throw new TributaryError('INTERNAL', `mask seed must be ${SEED_BYTES} bytes`);
  }
  if (bytes !== undefined && (!Number.isInteger(bytes) || bytes < 0)) {
    throw new TributaryError('INTERNAL', `cannot expand to ${bytes} bytes`);
  }
}

function makeNodeExpander(crypto: NodeCrypto): SeedExpander {
  const open = (seed: Uint8Array): KeystreamReader => {
    checkSeed(seed);
    const cipher = crypto.createCipheriv('chacha20', seed, IV);
    // OpenSSL keeps the stream position across updates, partial 64-byte blocks included.
    return (bytes: number) => {
      if (!Number.isInteger(bytes) || bytes < 0) throw new TributaryError('INTERNAL', `cannot read ${bytes} bytes`);
      if (bytes <= BLOCK_BYTES) return cipher.update(zeroBlock(bytes));
      const out = new Uint8Array(bytes);
      for (let offset = 0; offset < bytes; offset += BLOCK_BYTES) {
        out.set(cipher.update(zeroBlock(Math.min(BLOCK_BYTES, bytes - offset))), offset);
      }
      return out;
    };
  };
  const expand = (seed: Uint8Array, bytes: number): Uint8Array => {
    checkSeed(seed, bytes);
    return open(seed)(bytes);
  };
  return Object.assign(expand, { open });
}

/** First 16 bytes of libsodium's stream for the all-zero seed (see test/unit/mask-stream.test.ts). */
const ZERO_SEED_PREFIX = 'a11f8f12d0876f736d2d8fd26e14c2de';

function toHex(bytes: Uint8Array): string {
  let hex = '';
  for (const b of bytes) hex += b.toString(16).padStart(2, '0');
  return hex;
}

/** The Node path, only if this runtime's OpenSSL really produces libsodium's stream. */
function detectNodeExpander(): SeedExpander | undefined {
  const crypto = nodeCrypto();
  if (!crypto?.getCiphers().includes('chacha20')) return undefined;
  try {
    const expander = makeNodeExpander(crypto);
    return toHex(expander(new Uint8Array(SEED_BYTES), 16)) === ZERO_SEED_PREFIX ? expander : undefined;
  } catch {
    return undefined;
  }
}

export const expandSeedNode: SeedExpander | undefined = detectNodeExpander();

export const expandSeed: SeedExpander = expandSeedNode ?? expandSeedSodium;
