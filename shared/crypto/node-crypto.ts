/**
 * node:crypto when running in Node, without a static import (shared/ runs in browsers
 * too and sees no @types/node): found through `process.getBuiltinModule` (Node ≥ 20.16),
 * never present in browsers. Only the slice Tributary's fast paths use is typed here;
 * each fast path checks itself against libsodium before it is trusted.
 */

export interface NodeCipher {
  update(data: Uint8Array): Uint8Array;
}

/** An imported key (node:crypto KeyObject), opaque here. */
export type NodeKey = { readonly type: string };

export interface NodeCrypto {
  createCipheriv(algorithm: 'chacha20', key: Uint8Array, iv: Uint8Array): NodeCipher;
  getCiphers(): string[];
  createPrivateKey(options: { key: { kty: 'OKP'; crv: 'X25519'; d: string; x: string }; format: 'jwk' }): NodeKey;
  createPublicKey(options: { key: { kty: 'OKP'; crv: 'X25519'; x: string }; format: 'jwk' }): NodeKey;
  diffieHellman(options: { privateKey: NodeKey; publicKey: NodeKey }): Uint8Array;
}

interface NodeProcess {
  getBuiltinModule?: (id: string) => unknown;
}

export function nodeCrypto(): NodeCrypto | undefined {
  const proc = (globalThis as { process?: NodeProcess }).process;
  const mod = proc?.getBuiltinModule?.('node:crypto') as NodeCrypto | undefined;
  return mod && typeof mod.createCipheriv === 'function' ? mod : undefined;
}
