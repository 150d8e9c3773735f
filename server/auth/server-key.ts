import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromBase64, generateSigningKeyPair, toBase64, type KeyPair } from '../../shared/crypto/sodium.ts';

/**
 * The server's long-term Ed25519 identity, kept beside its state (readable by the owner
 * only). Clients pin its public key; losing it means every client must re-pin.
 */
export function loadOrCreateServerKey(dataDir: string): KeyPair {
  const file = join(dataDir, 'server-key.json');
  if (existsSync(file)) {
    const stored = JSON.parse(readFileSync(file, 'utf8')) as { publicKey: string; secretKey: string };
    return { publicKey: fromBase64(stored.publicKey), secretKey: fromBase64(stored.secretKey) };
  }
  const key = generateSigningKeyPair();
  writeFileSync(file, JSON.stringify({ publicKey: toBase64(key.publicKey), secretKey: toBase64(key.secretKey) }), {
    mode: 0o600,
    flag: 'wx',
  });
  return key;
}
