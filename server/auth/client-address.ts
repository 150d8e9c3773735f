import type { IncomingHttpHeaders } from 'node:http';
import { BlockList, isIP } from 'node:net';

/**
 * Which peers may say who the client is (X-Forwarded-For, -Proto, -Host): `true` for any,
 * or the proxies' addresses, CIDRs and the range names `loopback`, `linklocal`,
 * `uniquelocal`. Fastify's `trustProxy` takes the same values; the functions below read
 * a socket.io handshake exactly as Fastify reads a request (a test holds them together),
 * so a client has one address for REST and sockets alike.
 */
export type TrustProxy = boolean | string[];

/** The parts of a socket.io handshake (or any request) these functions read. */
export interface Handshake {
  address: string;
  headers: IncomingHttpHeaders;
  secure: boolean;
}

const RANGES: Record<string, string[]> = {
  loopback: ['127.0.0.1/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

const family = (address: string) => (isIP(address) === 4 ? 'ipv4' : 'ipv6');

/** Adds one address or CIDR to `list`, or throws saying what is wrong with it. */
function addEntry(list: BlockList, entry: string): void {
  const [address = '', prefix, ...rest] = entry.split('/');
  const max = isIP(address) === 4 ? 32 : 128;
  const bits = prefix === undefined ? max : /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
  if (isIP(address) === 0 || rest.length > 0 || !(bits > 0 && bits <= max)) throw new Error(`not an IP address or CIDR: ${entry}`);
  // An IPv4-mapped single address is kept as IPv4, as Fastify (proxy-addr) does.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped && prefix === undefined) list.addAddress(mapped[1]!, 'ipv4');
  else list.addSubnet(address, bits, family(address));
}

const compiled = new WeakMap<string[], (address: string) => boolean>();

function trustOf(trust: TrustProxy | undefined): (address: string) => boolean {
  if (trust === true) return () => true;
  if (!trust || trust.length === 0) return () => false;
  let check = compiled.get(trust);
  if (!check) {
    const list = new BlockList();
    for (const entry of trust.flatMap((e) => RANGES[e] ?? [e])) addEntry(list, entry);
    check = (address) => isIP(address) !== 0 && !address.includes('%') && list.check(address, family(address));
    compiled.set(trust, check);
  }
  return check;
}

/** `serve --trust-proxy`: `true`, or a comma-separated list (refused whole if any entry is not an address, CIDR or range name). */
export function parseTrustProxy(value: string): TrustProxy {
  if (value.trim() === 'true') return true;
  const entries = value.split(',').map((e) => e.trim());
  for (const entry of entries.flatMap((e) => RANGES[e] ?? [e])) addEntry(new BlockList(), entry);
  return entries;
}

/** X-Forwarded-For from the nearest hop outwards, empty entries dropped. */
function forwardedFor(header: string | string[] | undefined): string[] {
  if (typeof header !== 'string') return [];
  return header.split(',').map((e) => e.trim()).filter((e) => e.length > 0).reverse();
}

const lastEntry = (header: string | string[] | undefined) => (typeof header === 'string' ? header.slice(header.lastIndexOf(',') + 1).trim() : '');

/**
 * The client's address: the peer's own, unless the peer is a trusted proxy; then the
 * nearest address in X-Forwarded-For that is not a trusted proxy (Fastify's `request.ip`).
 */
export function clientAddress(handshake: Pick<Handshake, 'address' | 'headers'>, trust: TrustProxy | undefined): string {
  if (!trust) return handshake.address;
  const trusted = trustOf(trust);
  const chain = [handshake.address, ...forwardedFor(handshake.headers['x-forwarded-for'])];
  let hop = 0;
  while (hop < chain.length - 1 && trusted(chain[hop]!)) hop++;
  return chain[hop]!;
}

/** The origin the client addressed (`https://host[:port]`), from X-Forwarded-Proto/-Host when a trusted proxy set them. */
export function requestOrigin(handshake: Handshake, trust: TrustProxy | undefined): string | undefined {
  const viaProxy = trust !== undefined && trustOf(trust)(handshake.address);
  const protocol = (viaProxy && lastEntry(handshake.headers['x-forwarded-proto'])) || (handshake.secure ? 'https' : 'http');
  const host = (viaProxy && lastEntry(handshake.headers['x-forwarded-host'])) || handshake.headers.host;
  if (!host) return undefined;
  try {
    return new URL(`${protocol}://${host}`).origin;
  } catch {
    return undefined;
  }
}
