import { createAdapter } from '@socket.io/redis-streams-adapter';
import type { RedisClient } from './redis.ts';

export interface StreamsAdapterOptions {
  /** Entries kept in the stream (trimmed approximately); also how far back a recovering connection can catch up. */
  maxLen?: number;
  /** How long one blocking XREAD waits; also how long a closed server's reader lingers. */
  blockTimeInMs?: number;
}

/** What is used of a socket.io `Server`, whatever its event maps. */
export interface AdapterHost {
  adapter(factory: ReturnType<typeof createAdapter>): unknown;
}

/**
 * Makes rooms and broadcasts span the cluster: `io.to(room).emit`, `io.to(socketId).emit`,
 * `fetchSockets` and `serverSideEmit` reach sockets connected to any process sharing this
 * Redis. Broadcasts travel through the Redis stream `tributary:socket.io`, which a reader
 * resumes from its last offset after a Redis outage (the adapter duplicates `redis` for the
 * blocking reads and for its pub/sub channels, which carry the ephemeral messages:
 * `serverSideEmit`, `fetchSockets` and broadcasts with acks, lost during an outage).
 * With connection state recovery on, sessions are kept under `tributary:socket.io:session:`.
 *
 * Call before the server accepts connections: namespaces that exist already are switched
 * to the new adapter, but the rooms their sockets joined on the old one are not carried over.
 */
export function attachStreamsAdapter(
  io: AdapterHost,
  redis: RedisClient,
  options: StreamsAdapterOptions = {},
): void {
  io.adapter(
    createAdapter(redis, {
      streamName: 'tributary:socket.io',
      channelPrefix: 'tributary:socket.io',
      sessionKeyPrefix: 'tributary:socket.io:session:',
      maxLen: options.maxLen ?? 10_000,
      blockTimeInMs: options.blockTimeInMs ?? 5000,
    }),
  );
}
