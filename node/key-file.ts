import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { fromBase64, generateSigningKeyPair, toBase64, type KeyPair } from '../shared/crypto/sodium.ts';

function read(file: string): KeyPair {
  const stored = JSON.parse(readFileSync(file, 'utf8')) as { publicKey: string; secretKey: string };
  return { publicKey: fromBase64(stored.publicKey), secretKey: fromBase64(stored.secretKey) };
}

const code = (error: unknown) => (error as NodeJS.ErrnoException).code;

/**
 * A long-term Ed25519 key pair kept in a JSON file (`{publicKey, secretKey}`, base64),
 * readable by its owner only: read if it is there, else made and kept. Two processes
 * starting at once end up with the same key: the file appears whole or not at all (written
 * aside, then linked into place, which never replaces a file), and the loser reads the
 * winner's. Call after `cryptoReady()`.
 */
export function loadOrCreateKeyFile(file: string): KeyPair {
  try {
    return read(file);
  } catch (error) {
    if (code(error) !== 'ENOENT') throw error;
  }
  const key = generateSigningKeyPair();
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const aside = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(aside, JSON.stringify({ publicKey: toBase64(key.publicKey), secretKey: toBase64(key.secretKey) }), { mode: 0o600, flag: 'wx' });
  try {
    linkSync(aside, file);
    return key;
  } catch (error) {
    if (code(error) !== 'EEXIST') throw error;
    return read(file);
  } finally {
    unlinkSync(aside);
  }
}
