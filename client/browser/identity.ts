import { cryptoReady, generateSigningKeyPair, type KeyPair } from '../../shared/crypto/sodium.ts';
import { getItem, setItem } from './storage.ts';

/**
 * This browser's long-term identity (Ed25519), made at the first visit and kept in
 * IndexedDB, so an enrollment outlives reloads; and the server keys it pinned, by origin.
 */
export async function browserIdentity(): Promise<KeyPair> {
  await cryptoReady();
  const stored = await getItem<KeyPair>('identity');
  if (stored) return stored;
  const identity = generateSigningKeyPair();
  await setItem('identity', identity);
  return identity;
}

export function pinnedServerKey(server: string): Promise<Uint8Array | undefined> {
  return getItem<Uint8Array>(`server-key:${new URL(server).origin}`);
}

export function pinServerKey(server: string, key: Uint8Array): Promise<void> {
  return setItem(`server-key:${new URL(server).origin}`, key);
}
