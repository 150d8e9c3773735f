import { io, type Socket } from 'socket.io-client';
import { equalBytes, fingerprint, sign, type KeyPair } from '../shared/crypto/sodium.ts';
import { TributaryError } from '../shared/errors.ts';
import { isTransientRefusal, joinRetryDelayMs, pause } from '../shared/protocol/join-retry.ts';
import {
  joinProofMessage,
  type ChunkAck,
  type ChunkMeta,
  type ClientKind,
  type AckValue,
  type ClientEvent,
  type ClientToServerEvents,
  type EventBody,
  type JoinReply,
  type ReadyRequest,
  type RoundStart,
  type Reply,
  type ServerToClientEvents,
} from '../shared/protocol/events.ts';

type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;
export type SecureEvent = Extract<ClientEvent, `secagg:${string}`>;

/** A request unanswered this long is sent again (after a re-join if the connection dropped). */
const REQUEST_TIMEOUT_MS = 30_000;

/** Binary from the server: an ArrayBuffer in browsers, a Buffer in Node; one shape for both. */
export function bytes(value: Uint8Array | ArrayBuffer | null | undefined): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TributaryError('BAD_REQUEST', 'expected binary data from the server');
}

function unwrap<T>(reply: Reply<T>): T {
  if (reply.ok) return reply.value;
  throw TributaryError.fromBody(reply.error);
}

/** Rejects with the signal's reason as soon as it is aborted. */
export function unlessAborted<T>(signal: AbortSignal, work: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** A promise with its resolver: "joined on the current connection", awaited by requests. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** One socket.io connection, from its 'connect' to its 'disconnect'; work begun on it ends with it. */
interface Link {
  readonly dropped: AbortController;
  joined: boolean;
}

export interface ConnectionOptions {
  server: string;
  taskId: number;
  kind: ClientKind;
  shard?: number | undefined;
  pinnedServerKey?: Uint8Array | undefined;
  resume?: { clientId: string; token: Uint8Array } | undefined;
}

/** What the client does around each connection's join. */
export interface ConnectionHooks {
  /**
   * After `task:join` on a live connection: sets up what must be (once, not per connection)
   * and says what `client:ready` reports. Given up, not waited for, if the connection drops.
   */
  prepare(joined: JoinReply): Promise<ReadyRequest>;
  /** Joined and reported ready on a new connection. */
  joined(joined: JoinReply, readiness: ReadyRequest): void;
  /** The connection dropped (not closed by us); socket.io reconnects by itself. */
  dropped(reason: string): void;
  /** A join refused for now: it is asked again after `retryInMs` on this connection. */
  deferred(error: TributaryError, retryInMs: number): void;
  /** A join refused on a live connection, or an error the server sent unasked. */
  failed(error: Error): void;
  /** What the server pushes. */
  events: Pick<ServerToClientEvents, 'round:end' | 'task:status'> & { 'round:start': (start: RoundStart) => void };
}

/**
 * The client's link to the server: one socket.io socket that reconnects by itself, a join
 * handshake on every connection (challenge, signed proof, `task:join` taking the session
 * back, `client:ready`), and requests sent only while joined on the current connection.
 */
export class Connection {
  private socket: ClientSocket | undefined;
  private link: Link | undefined;
  /** Open while joined on the current connection; replaced at every disconnect. */
  private joinedGate = gate();
  private pinned: Uint8Array | undefined;
  private resumeWith: { clientId: string; token: Uint8Array } | undefined;
  private id = '';

  constructor(private readonly options: ConnectionOptions, private readonly hooks: ConnectionHooks) {
    this.pinned = options.pinnedServerKey;
    this.resumeWith = options.resume;
  }

  /** The server's key: pinned before, or seen at the first join. */
  get serverKey(): Uint8Array | undefined {
    return this.pinned;
  }

  get clientId(): string {
    return this.id;
  }

  /** What takes this client's session back after a reload or restart. */
  get resumeCredentials(): { clientId: string; token: Uint8Array } | undefined {
    return this.resumeWith;
  }

  /** Connects, and joins on this connection and on every one after it. */
  open(identity: KeyPair): void {
    const socket: ClientSocket = io(this.options.server, { transports: ['websocket'], reconnection: true });
    this.socket = socket;
    const { events } = this.hooks;
    socket.on('round:start', (start, received) => {
      // On arrival, before any check: the server sends the next model download when it hears this
      // (optional: a server from before the pacing sends no ack to answer).
      received?.();
      events['round:start'](start);
    });
    socket.on('round:end', events['round:end']);
    socket.on('task:status', events['task:status']);
    socket.on('server:error', (error) => this.hooks.failed(TributaryError.fromBody(error)));
    socket.on('connect', () => {
      const link: Link = { dropped: new AbortController(), joined: false };
      this.link = link;
      void this.joinUntilAdmitted(link, identity);
    });
    socket.on('disconnect', (reason) => {
      this.link?.dropped.abort(new Error(`the connection dropped (${reason})`));
      this.link = undefined;
      this.joinedGate = gate();
      if (reason !== 'io client disconnect') this.hooks.dropped(reason);
    });
  }

  close(): void {
    this.socket?.disconnect();
  }

  /** Fault injection: drops the connection as a network failure would; the socket reconnects by itself. */
  simulateDrop(): void {
    this.socket?.io.engine?.close();
  }

  /** Joins on `link`, asking again after a wait while the server refuses for now (its database is away, say). */
  private async joinUntilAdmitted(link: Link, identity: KeyPair): Promise<void> {
    for (let retry = 0; ; retry++) {
      try {
        return await this.join(link, identity);
      } catch (error) {
        // A join overtaken by its connection's drop is given up quietly: the next connection joins afresh.
        if (link.dropped.signal.aborted) return;
        if (!isTransientRefusal(error)) return this.hooks.failed(error instanceof Error ? error : new Error(String(error)));
        const wait = joinRetryDelayMs(retry);
        this.hooks.deferred(error, wait);
        await pause(wait, link.dropped.signal).catch(() => undefined);
        if (link.dropped.signal.aborted) return;
      }
    }
  }

  private async join(link: Link, identity: KeyPair): Promise<void> {
    const { taskId, kind, shard } = this.options;
    // Prove the enrolled identity: sign the one-time nonce this connection was given.
    const { nonce } = await this.ask(link, 'auth:challenge', {});
    const proof = sign(joinProofMessage(bytes(nonce), taskId, kind), identity.secretKey);
    const joined = await this.ask(link, 'task:join', {
      taskId,
      kind,
      proof,
      identityKey: identity.publicKey,
      ...(shard === undefined ? {} : { shard }),
      ...(this.resumeWith ? { resume: this.resumeWith } : {}),
    });
    const serverKey = bytes(joined.serverKey);
    if (this.pinned && !equalBytes(this.pinned, serverKey)) {
      throw new TributaryError('SERVER_KEY_MISMATCH', `pinned ${fingerprint(this.pinned)}, got ${fingerprint(serverKey)}`);
    }
    this.pinned = serverKey;
    this.id = joined.clientId;
    this.resumeWith = { clientId: joined.clientId, token: bytes(joined.resumeToken) };
    const readiness = await unlessAborted(link.dropped.signal, this.hooks.prepare({ ...joined, serverKey }));
    await this.ask(link, 'client:ready', readiness);
    link.joined = true;
    this.joinedGate.open();
    this.hooks.joined({ ...joined, serverKey }, readiness);
  }

  /**
   * One request on one connection: never sent once that connection dropped (socket.io would
   * queue it for the next, which has not joined yet), and given up when it drops.
   */
  private async ask<E extends ClientEvent>(link: Link, event: E, body: EventBody<E>, timeoutMs?: number): Promise<AckValue<E>> {
    link.dropped.signal.throwIfAborted();
    const socket = timeoutMs === undefined ? this.socket! : this.socket!.timeout(timeoutMs);
    // socket.io's emitWithAck typing loses the event map; the body's type is checked by this signature.
    const sender = socket as unknown as { emitWithAck(event: E, body: unknown): Promise<Reply<AckValue<E>>> };
    return unwrap(await unlessAborted(link.dropped.signal, sender.emitWithAck(event, body)));
  }

  /** The connection, if joined on it. */
  private joinedLink(): Link | undefined {
    return this.link?.joined ? this.link : undefined;
  }

  /** Reports readiness again (paused, a new speed); quietly not if not joined: every join reports it. */
  async report(readiness: () => Promise<ReadyRequest>): Promise<void> {
    const link = this.joinedLink();
    if (!link) return;
    try {
      await this.ask(link, 'client:ready', await readiness());
    } catch (error) {
      if (!link.dropped.signal.aborted) throw error;
    }
  }

  /** A secure-phase request: the server acks when it closes the phase, so the wait is long. */
  phase<E extends SecureEvent>(event: E, body: EventBody<E>, timeoutMs: number): Promise<AckValue<E>> {
    const link = this.joinedLink();
    if (!link) return Promise.reject(new TributaryError('NOT_JOINED', 'the connection dropped during a secure round'));
    return this.ask(link, event, body, timeoutMs);
  }

  /**
   * An upload chunk, in a request that survives connection trouble: sent only while joined
   * (volatile, so nothing is queued for a connection that has not re-joined yet), and sent
   * again when its answer does not come. Coded errors from the server are final.
   */
  async sendChunk(meta: ChunkMeta, data: Uint8Array): Promise<ChunkAck> {
    for (;;) {
      await this.joinedGate.promise;
      // socket.io's volatile/timeout typing loses the event map; the arguments are checked by this signature.
      const sender = this.socket!.volatile.timeout(REQUEST_TIMEOUT_MS) as unknown as {
        emitWithAck(event: 'update:chunk', meta: ChunkMeta, data: Uint8Array): Promise<Reply<ChunkAck>>;
      };
      let reply: Reply<ChunkAck>;
      try {
        reply = await sender.emitWithAck('update:chunk', meta, data);
      } catch {
        continue; // no answer in time: dropped with the connection, or the connection stalled
      }
      return unwrap(reply);
    }
  }
}
