import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { TributaryError } from '../../shared/errors.ts';
import type { ClientServer } from './gateway.ts';
import { TokenBucket } from './rate-limit.ts';

/** What one network address may hold and send, across all its connections. */
export interface AddressLimitOptions {
  /** Open connections (socket.io transports) at once. */
  connections: number;
  /** Messages a second on average, shared by the address's connections. */
  perSecond: number;
  /** Messages in a burst, shared likewise. */
  burst: number;
}

/**
 * Defaults a deployment lives with. A device needs one connection and a round needs a
 * handful of messages from it (challenge, join, ready, its chunks, five secure phases), so
 * 64 connections lets a lab or a household behind one NAT take part while one host cannot
 * hold thousands; 200 a second with bursts of 800 is four connections at their own full
 * rate, and lets 64 devices behind one NAT upload a few chunks each at a round's end.
 */
export const DEFAULT_ADDRESS_LIMITS: AddressLimitOptions = { connections: 64, perSecond: 200, burst: 800 };

interface AddressEntry {
  connections: number;
  budget: TokenBucket;
}

/**
 * Connections and a shared message budget per address. An address's entry outlives its
 * last connection until its budget would have refilled, so closing every socket and
 * opening new ones does not reset it.
 */
export class AddressLimits {
  private readonly byAddress = new Map<string, AddressEntry>();
  /** Addresses with no connection, oldest first, with when their entry may go. */
  private readonly idle = new Map<string, number>();
  private readonly ofConnection = new WeakMap<object, { address: string; entry: AddressEntry; admitted: boolean }>();

  constructor(private readonly limits: AddressLimitOptions) {}

  get cap(): number {
    return this.limits.connections;
  }

  /** A connection opened from `address`: counted while it is open, admitted if within the cap. */
  opened(connection: object, address: string): void {
    this.forgetIdle();
    let entry = this.byAddress.get(address);
    if (!entry) this.byAddress.set(address, (entry = { connections: 0, budget: new TokenBucket(this.limits.perSecond, this.limits.burst) }));
    this.idle.delete(address);
    entry.connections++;
    this.ofConnection.set(connection, { address, entry, admitted: entry.connections <= this.limits.connections });
  }

  closed(connection: object): void {
    const seen = this.ofConnection.get(connection);
    if (!seen) return;
    this.ofConnection.delete(connection);
    if (--seen.entry.connections > 0) return;
    // Insertion order is expiry order: every idle entry waits the same refill time.
    this.idle.set(seen.address, performance.now() + (this.limits.burst / this.limits.perSecond) * 1000);
  }

  admitted(connection: object): boolean {
    return this.ofConnection.get(connection)?.admitted ?? false;
  }

  /** The message budget `connection` shares with the other connections from its address. */
  budget(connection: object): TokenBucket {
    const seen = this.ofConnection.get(connection);
    if (!seen) throw new Error('a connection the address limits never saw open');
    return seen.entry.budget;
  }

  private forgetIdle(): void {
    const now = performance.now();
    for (const [address, until] of this.idle) {
      if (until > now) return;
      this.idle.delete(address);
      this.byAddress.delete(address);
    }
  }
}

/** A connection's peer, as socket.io's handshake shows it (`address` is `socket.handshake.address`). */
export interface Peer {
  address: string;
  headers: IncomingHttpHeaders;
}

/** The address a connection is counted under: its peer's, or behind a trusted proxy the one it forwarded for. */
export type AddressOf = (peer: Peer) => string;

export const peerAddress: AddressOf = (peer) => peer.address;

/**
 * Counts every transport connection by address as it opens, and refuses the client
 * namespace to one past the cap with RATE_LIMITED in its connect_error `data`. A refused
 * connection stays counted until it closes (socket.io closes one that joins no namespace).
 */
export function limitByAddress(io: ClientServer, limits: AddressLimits, addressOf: AddressOf): void {
  io.engine.on('connection', (connection: { remoteAddress: string; request: IncomingMessage; once(event: 'close', listener: () => void): void }) => {
    limits.opened(connection, addressOf({ address: connection.remoteAddress, headers: connection.request.headers }));
    connection.once('close', () => limits.closed(connection));
  });
  io.use((socket, next) => {
    if (limits.admitted(socket.conn)) return next();
    const error = new TributaryError('RATE_LIMITED', `more than ${limits.cap} connections from this address`);
    next(Object.assign(new Error(error.message), { data: error.toBody() }));
  });
}
