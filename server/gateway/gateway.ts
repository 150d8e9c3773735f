import pLimit from 'p-limit';
import type { Logger } from 'pino';
import type { Server } from 'socket.io';
import { TributaryError, type ErrorBody } from '../../shared/errors.ts';
import type { ClientToServerEvents, ServerToClientEvents } from '../../shared/protocol/events.ts';
import type { Enrollments } from '../auth/enrollment.ts';
import type { SessionDirectory } from '../cluster/session-directory.ts';
import type { Coordinator } from '../rounds/coordinator.ts';
import type { Scheduler } from '../rounds/scheduler.ts';
import type { Store } from '../store/store.ts';
import { AddressLimits, DEFAULT_ADDRESS_LIMITS, limitByAddress, peerAddress, type AddressLimitOptions, type AddressOf } from './address-limits.ts';
import type { ClientRegistry } from './clients.ts';
import { ClientConnection, sessionRoom, type ClientSocket } from './connection.ts';
import { EventDispatcher, type EventAccess, type EventHandlers } from './dispatcher.ts';
import { SessionGrace } from './session-grace.ts';

export type ClientServer = Server<ClientToServerEvents, ServerToClientEvents>;

/**
 * Who may send each client event (see EventRule). The dispatcher enforces it, and the
 * authorization test walks it.
 */
export const CLIENT_EVENT_ACCESS = {
  'auth:challenge': 'connected',
  'task:join': 'enrolled',
  'client:ready': 'joined',
  'update:chunk': 'joined',
  'secagg:advertise': 'joined',
  'secagg:share': 'joined',
  'secagg:survivors': 'joined',
  'secagg:confirm': 'joined',
  'secagg:reveal': 'joined',
} as const satisfies EventAccess;

/** Between server processes (cluster mode): a session was taken back on the sending process. */
const SESSION_MOVED = 'tributary:session-moved';

/** A reconnect within this time keeps the client's session: mobile networks drop for seconds, not minutes. */
export const DEFAULT_SESSION_GRACE_MS = 30_000;
/** Messages a connection may send: on average, and in a burst (a round needs a handful; a flood is refused). */
const MESSAGES_PER_SECOND = 50;
const MESSAGE_BURST = 200;
/** Joins looking the store up at once (two queries each): well under PostgreSQL's pool of 10, which rounds share. */
const JOIN_LOOKUPS_AT_ONCE = 6;

export interface GatewayOptions {
  store: Store;
  coordinator: Coordinator;
  clients: ClientRegistry;
  enrollments: Enrollments;
  scheduler: Scheduler;
  serverKey: Uint8Array;
  /** How long a disconnected client keeps its session (and its place in a round) for a reconnect. */
  sessionGraceMs?: number;
  /** Per-connection message budget: average per second and burst. */
  messageRate?: { perSecond: number; burst: number };
  /** Per-address connection cap and shared message budget (default DEFAULT_ADDRESS_LIMITS). */
  addressLimits?: AddressLimitOptions;
  /** Where a connection comes from (default: its peer address; behind a trusted proxy, the forwarded one). */
  addressOf?: AddressOf;
  /** Cluster mode: sessions recorded in Redis, so a client resumes on any process. */
  sessions?: SessionDirectory | undefined;
  log: Logger;
}

/** What each client event does, for a caller its rule admitted. */
function clientEventHandlers({ coordinator, scheduler }: GatewayOptions): EventHandlers<ClientConnection, typeof CLIENT_EVENT_ACCESS> {
  const runnerOf = (taskId: number) => {
    const runner = coordinator.runner(taskId);
    if (!runner) throw new TributaryError('TASK_NOT_RUNNING');
    return runner;
  };
  /** The running secure round of the task, for a participant's message about that round. */
  const secureRound = (ref: { taskId: number; round: number }) => runnerOf(ref.taskId).secureRound(ref.round);

  return {
    'auth:challenge': (_request, { caller }) => caller.challenge(),
    'task:join': (request, { caller }) => caller.join(request),
    'client:ready': (request, { session }) => {
      session.samples = request.samples;
      session.backend = request.backend;
      session.cachedVersion = request.cachedVersion;
      session.paused = request.paused ?? false;
      if (request.capabilities) {
        session.capabilities = request.capabilities;
        scheduler.reported(session, request.capabilities.throughput);
      }
      coordinator.runner(request.taskId)?.clientsChanged();
      return { selected: false };
    },
    'update:chunk': (meta, { session, extra: [data] }) => {
      if (!(data instanceof Uint8Array)) throw new TributaryError('BAD_REQUEST', 'chunk data must be binary');
      return runnerOf(meta.taskId).acceptChunk(session.id, meta, data);
    },
    'secagg:advertise': async (request, { session }) => ({ advertised: await secureRound(request).advertise(session.id, request) }),
    'secagg:share': (request, { session }) => secureRound(request).share(session.id, request.boxes),
    'secagg:survivors': async (request, { session }) => ({ survivors: await secureRound(request).survivorsFor(session.id) }),
    'secagg:confirm': (request, { session }) => secureRound(request).confirm(session.id, request.signature),
    'secagg:reveal': (request, { session }) => {
      secureRound(request).reveal(session.id, request.shares);
      return { accepted: true as const };
    },
  };
}

/** A revoked key's sessions end at once, wherever they are: connected, or away in their grace period. */
function endRevokedSessions({ enrollments, clients }: GatewayOptions, grace: SessionGrace): void {
  const why = new TributaryError('NOT_ENROLLED', "this device's enrollment was revoked; an operator must restore it").toBody();
  enrollments.onRevoked((taskId, identityKeys) => {
    for (const key of identityKeys) {
      for (const session of clients.withIdentity(taskId, Buffer.from(key, 'hex'))) grace.endNow(session, why);
    }
  });
}

/**
 * The client-facing socket protocol: one ClientConnection per socket, every message through
 * one EventDispatcher. Joining needs an enrolled identity key, proven by signing a one-time
 * nonce; sessions outlive connections by `sessionGraceMs`, and end at once when their key is
 * revoked. Connections and messages are limited per socket and per address.
 */
export function attachGateway(io: ClientServer, options: GatewayOptions): void {
  // serverSideEmit reaches the other processes through the adapter (Redis in cluster mode; nobody in one process).
  const interServer = io as unknown as { serverSideEmit(event: string, ...args: unknown[]): void; on(event: string, listener: (clientId: string) => void): void };
  const grace = new SessionGrace(options.sessionGraceMs ?? DEFAULT_SESSION_GRACE_MS, options.clients, options.coordinator, options.sessions);
  const dispatcher = new EventDispatcher(clientEventHandlers(options), CLIENT_EVENT_ACCESS, options.log);
  const context = {
    ...options, grace, messageRate: options.messageRate ?? { perSecond: MESSAGES_PER_SECOND, burst: MESSAGE_BURST },
    joinLookups: pLimit(JOIN_LOOKUPS_AT_ONCE),
    // As a local take-over: the client is told why and its socket disconnected from the namespace, so it does not reconnect by itself.
    replaceElsewhere: (clientId: string, why: ErrorBody) => {
      io.to(sessionRoom(clientId)).emit('server:error', why);
      io.in(sessionRoom(clientId)).disconnectSockets();
    },
    movedHere: (clientId: string) => interServer.serverSideEmit(SESSION_MOVED, clientId),
  };
  // The process a session left: its round stops waiting for the client (whose upload now goes elsewhere) at once.
  interServer.on(SESSION_MOVED, (clientId: string) => {
    const session = options.clients.get(clientId);
    if (session && !session.connected) grace.end(session);
  });
  const addresses = new AddressLimits(options.addressLimits ?? DEFAULT_ADDRESS_LIMITS);
  limitByAddress(io, addresses, options.addressOf ?? peerAddress);
  endRevokedSessions(options, grace);
  io.on('connection', (socket: ClientSocket) => {
    const connection = new ClientConnection(socket, context, addresses.budget(socket.conn));
    socket.onAny((event: string, ...args: unknown[]) => void dispatcher.receive(connection, event, args));
    socket.on('disconnect', (reason) => connection.disconnected(reason));
  });
}
