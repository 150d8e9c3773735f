import { randomUUID } from 'node:crypto';
import type { Socket as NetSocket } from 'node:net';
import type { LimitFunction } from 'p-limit';
import type { Logger } from 'pino';
import type { Socket } from 'socket.io';
import { equalBytes, randomBytes, verify } from '../../shared/crypto/sodium.ts';
import { shardsBySize } from '../../shared/data/partition.ts';
import { TributaryError, type ErrorBody } from '../../shared/errors.ts';
import { joinProofMessage, type ClientToServerEvents, type JoinReply, type JoinRequest, type ServerToClientEvents } from '../../shared/protocol/events.ts';
import type { TaskRecord } from '../../shared/protocol/task.ts';
import type { Enrollments } from '../auth/enrollment.ts';
import type { SessionDirectory } from '../cluster/session-directory.ts';
import { requireTask, type Store } from '../store/store.ts';
import { ClientSession, type ClientLink, type ClientRegistry } from './clients.ts';
import type { Caller } from './dispatcher.ts';
import { TokenBucket } from './rate-limit.ts';
import type { SessionGrace } from './session-grace.ts';

export type ClientSocket = Socket<ClientToServerEvents, ServerToClientEvents>;

/** The room of a task's joined clients, which hears its round ends and status changes. */
export const taskRoom = (taskId: number) => `task:${taskId}`;
/** The room of a session's connection, wherever it is: another process ends it through it. */
export const sessionRoom = (clientId: string) => `session:${clientId}`;

/** What every connection shares. */
export interface ConnectionContext {
  store: Store;
  clients: ClientRegistry;
  enrollments: Enrollments;
  grace: SessionGrace;
  serverKey: Uint8Array;
  /**
   * Runs a join's store lookups, a few at once: a crowd that reconnects together (its
   * process died) waits its turn here, with its heartbeats answered, rather than in the
   * database pool, whose waits time out and send every client round again.
   */
  joinLookups: LimitFunction;
  /** Per-connection message budget: average per second and burst. */
  messageRate: { perSecond: number; burst: number };
  /** Cluster mode: sessions other processes held, for a client that comes back here. */
  sessions?: SessionDirectory | undefined;
  /** Cluster mode: ends a session's connection on whichever process holds it (its room reaches every process). */
  replaceElsewhere?: (clientId: string, why: ErrorBody) => void;
  /** Cluster mode: a session was taken back here; the process it came from lets it go now rather than after its grace period. */
  movedHere?: (clientId: string) => void;
  log: Logger;
}

/** A config's arrival unconfirmed this long (an old client, a stalled link) frees its download slot anyway. */
const ROUND_START_ACK_TIMEOUT_MS = 10_000;

/** What a client's other connection is told when a join with its identity key takes its session over. */
const REPLACED = new TributaryError('SESSION_REPLACED').toBody();

/**
 * One client socket: the session it speaks for, its one-time join nonce, its message
 * budget and the link its session sends through. A session outlives it: when the socket
 * drops, the session waits out its grace period for the client to take it back.
 */
export class ClientConnection implements Caller {
  private joined: ClientSession | undefined;
  private nonce: Uint8Array | undefined;
  private readonly budget: TokenBucket;
  private readonly link: ClientLink;

  /** `addressBudget` is shared by every connection from the socket's address: opening more sockets buys no more messages. */
  constructor(
    private readonly socket: ClientSocket,
    private readonly context: ConnectionContext,
    private readonly addressBudget: TokenBucket,
  ) {
    this.budget = new TokenBucket(context.messageRate.perSecond, context.messageRate.burst);
    // Bytes read from this client's TCP connection, framing included (clients use websocket).
    const tcp = (socket.conn.request as { socket?: NetSocket }).socket;
    this.link = {
      bytesRead: () => tcp?.bytesRead ?? 0,
      // Acknowledged on arrival: the sender paces model downloads by these answers (dispatch.ts).
      sendRoundStart: (start) => new Promise<void>((resolve) => {
        socket.timeout(ROUND_START_ACK_TIMEOUT_MS).emit('round:start', start, () => resolve());
      }),
      drop: (error) => {
        socket.emit('server:error', error);
        // A namespace disconnect, not a transport close: socket.io clients do not reconnect after it.
        socket.disconnect();
      },
    };
  }

  /** The session this connection speaks for: not one it lost (revoked, or taken over by another connection). */
  get session(): ClientSession | undefined {
    return this.joined?.isLink(this.link) ? this.joined : undefined;
  }

  spendMessage(): void {
    if (!this.budget.take()) throw new TributaryError('RATE_LIMITED', `more than ${this.context.messageRate.perSecond} messages a second`);
    if (!this.addressBudget.take()) throw new TributaryError('RATE_LIMITED', 'too many messages from this address');
  }

  reportError(error: ErrorBody): void {
    this.socket.emit('server:error', error);
  }

  /** A fresh nonce for the next join's proof to sign. */
  challenge(): { nonce: Uint8Array } {
    this.nonce = randomBytes(32);
    return { nonce: this.nonce };
  }

  /** Joins a task with an enrolled identity: its session taken back (`resume`), or a new one. */
  async join(request: JoinRequest): Promise<JoinReply> {
    // The proof signs this connection's nonce, once: a recorded join cannot be replayed.
    const nonce = this.nonce;
    this.nonce = undefined;
    if (!nonce || !verify(request.proof, joinProofMessage(nonce, request.taskId, request.kind), request.identityKey)) {
      throw new TributaryError('NOT_ENROLLED', 'the join proof does not verify (ask auth:challenge first)');
    }
    const { store, enrollments, clients, grace, serverKey, joinLookups, log } = this.context;
    const task = await joinLookups(async () => {
      if (this.socket.disconnected) throw new TributaryError('NOT_JOINED', 'the connection closed while the join waited');
      const task = await requireTask(store, request.taskId);
      // Checked again if a revocation landed meanwhile: its listener ran before this session existed to be ended.
      for (let seen = -1; seen !== enrollments.revocations;) {
        seen = enrollments.revocations;
        await enrollments.check(task.id, request.identityKey, request.kind);
      }
      return task;
    });
    // Closed while the lookups ran: a session made now would sit on a dead link, never released.
    if (this.socket.disconnected) throw new TributaryError('NOT_JOINED', 'the connection closed during the join');
    if (this.joined) {
      // Joining again on one connection starts over, out of the old task's room too.
      void this.socket.leave(taskRoom(this.joined.taskId));
      grace.end(this.joined);
    }
    this.joined = undefined;
    const previous = this.takeOver(request, task.id);
    // Not held here: another process may have held it (cluster mode).
    const adopted = previous ? undefined : await this.adopt(request, task.id);
    if (this.socket.disconnected) throw new TributaryError('NOT_JOINED', 'the connection closed during the join');
    let session: ClientSession;
    if (adopted) {
      adopted.attach(this.link);
      clients.add(adopted);
      session = adopted;
      this.context.movedHere?.(adopted.id);
    } else if (previous) {
      grace.relink(previous, REPLACED);
      grace.resumed(previous);
      previous.attach(this.link);
      session = previous;
      // After the ack: the round config it missed while away, if any.
      setImmediate(() => previous.isLink(this.link) && previous.resendRoundStart());
    } else {
      session = this.newSession(request, task);
      clients.add(session);
    }
    this.joined = session;
    await this.socket.join(taskRoom(task.id));
    const resumed = !!previous || !!adopted;
    if (this.context.sessions) await this.publish(session);
    log.info({ clientId: session.id, taskId: task.id, kind: request.kind, shard: session.shard, resumed, fromAnotherProcess: !!adopted }, resumed ? 'client resumed' : 'client joined');
    return { clientId: session.id, resumeToken: session.resumeToken, resumed, serverKey, task, shard: session.shard };
  }

  /** Cluster mode: the session recorded as this process's, and the identity's session on another process, if any, ended. */
  private async publish(session: ClientSession): Promise<void> {
    const { sessions, replaceElsewhere, log } = this.context;
    await this.socket.join(sessionRoom(session.id));
    try {
      const before = await sessions!.publish(session);
      if (before && !this.context.clients.get(before)) replaceElsewhere?.(before, REPLACED);
    } catch (error) {
      log.warn({ err: error, clientId: session.id }, 'could not record the session in Redis: another process cannot resume it');
    }
  }

  /** The session another process held, taken back with the join's resume token; none if Redis does not say so in time. */
  private async adopt(request: JoinRequest, taskId: number): Promise<ClientSession | undefined> {
    const { sessions, clients, log } = this.context;
    if (!sessions || !request.resume || clients.get(request.resume.clientId)) return undefined;
    const init = await sessions.claim(request, taskId).catch((error: unknown) => {
      log.warn({ err: error }, 'could not look the session up in Redis: the client joins afresh');
      return undefined;
    });
    return init && new ClientSession(init);
  }

  /** The socket closed: its session, if any, waits for the client to come back on another. */
  disconnected(reason: string): void {
    const session = this.joined;
    if (!session) return;
    this.context.log.debug({ clientId: session.id, reason }, 'client disconnected');
    this.joined = undefined;
    void this.socket.leave(taskRoom(session.taskId));
    if (!session.isLink(this.link)) return; // the client already came back on another connection
    session.detach(this.link);
    this.context.grace.wait(session);
  }

  /**
   * One live session per identity key and task, so a device's weight in a round never grows
   * with its sockets: the key's session that the request's resume token takes back, if any;
   * any other of the key's sessions ends (a reloaded page that lost its token joins afresh).
   */
  private takeOver(request: JoinRequest, taskId: number): ClientSession | undefined {
    const { clients, grace } = this.context;
    let resumed: ClientSession | undefined;
    for (const live of clients.withIdentity(taskId, request.identityKey)) {
      if (request.resume && live.id === request.resume.clientId && equalBytes(live.resumeToken, request.resume.token)) resumed = live;
      else grace.endNow(live, REPLACED);
    }
    return resumed;
  }

  private newSession(request: JoinRequest, task: TaskRecord): ClientSession {
    const shards = task.spec.shards;
    const session = new ClientSession({
      id: randomUUID(),
      taskId: task.id,
      kind: request.kind,
      identityKey: new Uint8Array(request.identityKey),
      shard: request.shard !== undefined && request.shard < shards ? request.shard : this.context.clients.freeShard(task.id, shards, shardsBySize(task.spec.partition, shards), request.kind === 'gpu'),
      resumeToken: randomBytes(32),
    });
    session.attach(this.link);
    return session;
  }
}
