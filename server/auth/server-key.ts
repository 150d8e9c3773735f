import { join } from 'node:path';
import type { KeyPair } from '../../shared/crypto/sodium.ts';
import { loadOrCreateKeyFile } from '../../node/key-file.ts';

/**
 * The server's long-term Ed25519 identity, kept beside its state (readable by the owner
 * only). Clients pin its public key; losing it means every client must re-pin.
 */
export function loadOrCreateServerKey(dataDir: string): KeyPair {
  return loadOrCreateKeyFile(join(dataDir, 'server-key.json'));
}
