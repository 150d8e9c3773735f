import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { clientAddress, parseTrustProxy, requestOrigin, type TrustProxy } from '../../server/auth/client-address.ts';

/** The socket side must name a client exactly as Fastify's `request.ip` does for the same headers. */
async function fastifyView(trustProxy: TrustProxy, remoteAddress: string, headers: Record<string, string>) {
  const app = Fastify({ trustProxy });
  app.get('/', (request) => ({ ip: request.ip, origin: `${request.protocol}://${request.host}` }));
  const res = await app.inject({ url: '/', remoteAddress, headers });
  await app.close();
  return res.json() as { ip: string; origin: string };
}

const CASES: Array<[string, TrustProxy, string, Record<string, string>]> = [
  ['no header', ['10.5.0.1'], '10.5.0.1', {}],
  ['one trusted proxy', ['10.5.0.1'], '10.5.0.1', { 'x-forwarded-for': '203.0.113.1' }],
  ['a chain past one trusted proxy', ['10.5.0.1'], '10.5.0.1', { 'x-forwarded-for': '198.51.100.1, 203.0.113.1' }],
  ['two trusted hops (CIDR)', ['10.5.0.0/16'], '10.5.0.1', { 'x-forwarded-for': '198.51.100.1, 10.5.3.3' }],
  ['an untrusted peer sending the header', ['10.5.0.1'], '203.0.113.9', { 'x-forwarded-for': '198.51.100.1' }],
  ['everything trusted', true, '10.5.0.1', { 'x-forwarded-for': '198.51.100.1, 10.0.0.2,10.0.0.3' }],
  ['trust off', false, '10.5.0.1', { 'x-forwarded-for': '198.51.100.1' }],
  ['loopback by name, IPv4-mapped peer', ['loopback'], '::ffff:127.0.0.1', { 'x-forwarded-for': '198.51.100.4' }],
  ['uniquelocal and linklocal by name', ['uniquelocal', 'linklocal'], '192.168.1.1', { 'x-forwarded-for': '198.51.100.5, 169.254.0.9' }],
  ['IPv6 proxies', ['2001:db8::/32'], '2001:db8::1', { 'x-forwarded-for': '198.51.100.3, 2001:db8::2' }],
  ['garbage in the header', ['10.5.0.1'], '10.5.0.1', { 'x-forwarded-for': '198.51.100.1, unknown' }],
  ['empty entries', ['10.5.0.1'], '10.5.0.1', { 'x-forwarded-for': ' , 198.51.100.6 ,, ' }],
  ['forwarded proto and host from a trusted proxy', ['10.5.0.1'], '10.5.0.1', { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'fl.example', host: 'upstream:8080' }],
  ['forwarded proto and host from an untrusted peer', ['10.5.0.1'], '203.0.113.9', { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example', host: 'fl.example' }],
];

describe('clientAddress and requestOrigin', () => {
  it.each(CASES)('agree with Fastify: %s', async (_label, trust, address, headers) => {
    const fastify = await fastifyView(trust, address, headers);
    const handshake = { address, headers: { host: 'localhost:80', ...headers }, secure: false };
    expect(clientAddress(handshake, trust)).toBe(fastify.ip);
    expect(requestOrigin(handshake, trust)).toBe(new URL(fastify.origin).origin);
  });
});

describe('parseTrustProxy (serve --trust-proxy)', () => {
  it('reads true, or a comma-separated list of addresses, CIDRs and range names', () => {
    expect(parseTrustProxy('true')).toBe(true);
    expect(parseTrustProxy('10.0.0.1, 10.1.0.0/16,loopback')).toEqual(['10.0.0.1', '10.1.0.0/16', 'loopback']);
    expect(parseTrustProxy('::1,2001:db8::/32')).toEqual(['::1', '2001:db8::/32']);
  });

  it.each(['', 'proxy.example', '10.0.0.0/33', '10.0.0.1/', '300.1.1.1'])('refuses %j', (value) => {
    expect(() => parseTrustProxy(value)).toThrow();
  });
});
