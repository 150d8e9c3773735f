import { randomUUID } from 'node:crypto';
import type { Socket as NetSocket } from 'node:net';
import type { Logger } from 'pino';
import type { Server, Socket } from 'socket.io';
import { Compile } from 'typebox/compile';
import type { Static } from 'typebox';
import { equalBytes, randomBytes, verify } from '../../shared/crypto/sodium.ts';
import { shardsBySize } from '../../shared/data/partition.ts';
import { TributaryError, toErrorBody } from '../../shared/errors.ts';
import {
  CLIENT_EVENT_SCHEMAS,
  joinProofMessage,
  type AdminClientToServerEvents,
  type AdminServerToClientEvents,
  type ClientToServerEvents,
  type JoinReply,
  type ServerToClientEvents,
} from '../../shared/protocol/events.ts';
import type { Enrollments } from '../auth/enrollment.ts';
import { ClientSession, type ClientLink, type ClientRegistry } from './clients.ts';
import type { Coordinator } from '../rounds/coordinator.ts';
import type { RoundEvents } from '../rounds/runner.ts';
import { TokenBucket } from './rate-limit.ts';
import type { Scheduler } from '../rounds/scheduler.ts';
import type { SecureRound } from '../secagg/secure-round.ts';
import { requireTask, type Store } from '../store/store.ts';

export type ClientServer = Server<ClientToServerEvents, ServerToClientEvents>;
type ClientSocket = Socket<ClientToServerEvents, ServerToClientEvents>;
type ClientEvent = keyof ClientToServerEvents;

/**
 * Who may send each client event: anyone connected; a client proving an enrolled
 * identity (the join itself checks); or a client joined to the task the message names.
 * The authorization test walks this table.
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
} as const satisfies Record<ClientEvent, 'connected' | 'enrolled' | 'joined'>;

const validators = Object.fromEntries(Object.entries(CLIENT_EVENT_SCHEMAS).map(([event, schema]) => [event, Compile(schema)])) as {
  [E in ClientEvent]: ReturnType<typeof Compile<(typeof CLIENT_EVENT_SCHEMAS)[E]>>;
};

function parse<E extends ClientEvent>(event: E, value: unknown): Static<(typeof CLIENT_EVENT_SCHEMAS)[E]> {
  const validator = validators[event];
  if (validator.Check(value)) return value as Static<(typeof CLIENT_EVENT_SCHEMAS)[E]>;
  const first = validator.Errors(value)[0];
  throw new TributaryError('BAD_REQUEST', first ? `${first.instancePath ?? ''} ${first.message}`.trim() : undefined);
}

const taskRoom = (taskId: number) => `task:${taskId}`;

/** A reconnect within this time keeps the client's session: mobile networks drop for seconds, not minutes. */
export const DEFAULT_SESSION_GRACE_MS = 30_000;
/** Messages a connection may send: on average, and in a burst (a round needs a handful; a flood is refused). */
const MESSAGES_PER_SECOND = 50;
const MESSAGE_BURST = 200;

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
  log: Logger;
}

/** Round events go to the task's clients and to everyone watching on /admin. */
export function socketRoundEvents(io: ClientServer): RoundEvents {
  const admin = io.of('/admin') as unknown as Server<AdminClientToServerEvents, AdminServerToClientEvents>;
  return {
    roundStarted: (event) => admin.emit('round:started', event),
    uploadProgress: (event) => admin.emit('round:upload', event),
    roundAborted: (event) => admin.emit('round:aborted', event),
    roundComplete: (record, end, detail) => {
      io.to(taskRoom(end.taskId)).emit('round:end', end);
      admin.emit('round:complete', record);
      if (detail.participants.length > 0) admin.emit('round:participants', { taskId: record.taskId, round: record.round, deadlineMs: detail.deadlineMs, participants: detail.participants });
    },
    taskStatus: (event) => {
      io.to(taskRoom(event.taskId)).emit('task:status', event);
      admin.emit('task:status', event);
    },
  };
}

/**
 * The client-facing socket protocol. Every message is rate-limited, validated against its
 * schema (shared/protocol.ts) and answered through its ack: a value, or a coded error.
 * Joining needs an enrolled identity key, proven by signing a one-time nonce. Nothing a
 * client sends can throw past this layer.
 */
export function attachGateway(io: ClientServer, options: GatewayOptions): void {
  const { store, coordinator, clients, enrollments, scheduler, serverKey, log } = options;
  const sessionGraceMs = options.sessionGraceMs ?? DEFAULT_SESSION_GRACE_MS;
  const rate = options.messageRate ?? { perSecond: MESSAGES_PER_SECOND, burst: MESSAGE_BURST };
  // Sessions whose connection dropped, by id: each ends for good when its timer fires.
  const away = new Map<string, ReturnType<typeof setTimeout>>();

  /** The session ends: its client is out of the task until it joins afresh. */
  const endSession = (s: ClientSession) => {
    clearTimeout(away.get(s.id));
    away.delete(s.id);
    clients.remove(s.id);
    coordinator.runner(s.taskId)?.clientLeft(s.id);
  };

  io.on('connection', (socket: ClientSocket) => {
    let session: ClientSession | undefined;
    let nonce: Uint8Array | undefined;
    const bucket = new TokenBucket(rate.perSecond, rate.burst);
    // Bytes read from this client's TCP connection, framing included (clients use websocket).
    const tcp = (socket.conn.request as { socket?: NetSocket }).socket;
    const link: ClientLink = {
      bytesRead: () => tcp?.bytesRead ?? 0,
      sendRoundStart: (start) => socket.emit('round:start', start),
    };

    const requireSession = (taskId: number): ClientSession => {
      if (!session || session.taskId !== taskId) throw new TributaryError('NOT_JOINED', `task ${taskId}`);
      return session;
    };

    /** This connection stops speaking for its session, which waits `sessionGraceMs` for the client to come back. */
    const release = () => {
      const s = session;
      if (!s) return;
      session = undefined;
      void socket.leave(taskRoom(s.taskId));
      if (!s.isLink(link)) return; // the client already came back on another connection
      s.detach(link);
      coordinator.runner(s.taskId)?.clientAway(s.id);
      away.set(s.id, setTimeout(() => {
        if (!s.connected) endSession(s);
      }, sessionGraceMs));
    };

    const runnerOf = (taskId: number) => {
      const runner = coordinator.runner(taskId);
      if (!runner) throw new TributaryError('TASK_NOT_RUNNING');
      return runner;
    };

    /** The running secure round of the task, for a participant's message about that round. */
    const secureRound = (ref: { taskId: number; round: number }): { clientId: string; round: SecureRound } => {
      const client = requireSession(ref.taskId);
      return { clientId: client.id, round: runnerOf(ref.taskId).secureRound(ref.round) };
    };

    const join = async (request: Static<typeof CLIENT_EVENT_SCHEMAS['task:join']>): Promise<JoinReply> => {
      // The proof signs this connection's nonce, once: a recorded join cannot be replayed.
      const challenge = nonce;
      nonce = undefined;
      if (!challenge || !verify(request.proof, joinProofMessage(challenge, request.taskId, request.kind), request.identityKey)) {
        throw new TributaryError('NOT_ENROLLED', 'the join proof does not verify (ask auth:challenge first)');
      }
      const task = await requireTask(store, request.taskId);
      await enrollments.check(task.id, request.identityKey, request.kind);
      if (session) endSession(session); // joining again on one connection starts over
      session = undefined;
      const candidate = request.resume && clients.get(request.resume.clientId);
      const previous = candidate && candidate.taskId === task.id && !candidate.connected &&
        equalBytes(candidate.resumeToken, request.resume!.token) && equalBytes(candidate.identityKey, request.identityKey) ? candidate : undefined;
      if (previous) {
        clearTimeout(away.get(previous.id));
        away.delete(previous.id);
        previous.attach(link);
        session = previous;
        // After the ack: the round config it missed while away, if any.
        setImmediate(() => previous.isLink(link) && previous.resendRoundStart());
      } else {
        const shards = task.spec.shards;
        session = new ClientSession({
          id: randomUUID(),
          taskId: task.id,
          kind: request.kind,
          identityKey: new Uint8Array(request.identityKey),
          shard: request.shard !== undefined && request.shard < shards ? request.shard : clients.freeShard(task.id, shards, shardsBySize(task.spec.partition, shards), request.kind === 'gpu'),
          resumeToken: randomBytes(32),
        });
        session.attach(link);
        clients.add(session);
      }
      await socket.join(taskRoom(task.id));
      log.info({ clientId: session.id, taskId: task.id, kind: request.kind, shard: session.shard, resumed: !!previous }, previous ? 'client resumed' : 'client joined');
      return { clientId: session.id, resumeToken: session.resumeToken, resumed: !!previous, serverKey, task, shard: session.shard };
    };

    /** Each event's work, after its payload has passed its schema. */
    const handlers: { [E in ClientEvent]: (request: Static<(typeof CLIENT_EVENT_SCHEMAS)[E]>, extra: unknown[]) => unknown } = {
      'auth:challenge': () => {
        nonce = randomBytes(32);
        return { nonce };
      },
      'task:join': join,
      'client:ready': (request) => {
        const client = requireSession(request.taskId);
        client.samples = request.samples;
        client.backend = request.backend;
        client.cachedVersion = request.cachedVersion;
        client.paused = request.paused ?? false;
        if (request.capabilities) {
          client.capabilities = request.capabilities;
          scheduler.reported(client, request.capabilities.throughput);
        }
        coordinator.runner(request.taskId)?.clientsChanged();
        return { selected: false };
      },
      'update:chunk': (meta, [data]) => {
        if (!(data instanceof Uint8Array)) throw new TributaryError('BAD_REQUEST', 'chunk data must be binary');
        const client = requireSession(meta.taskId);
        return runnerOf(meta.taskId).acceptChunk(client.id, meta, data);
      },
      'secagg:advertise': async (request) => {
        const { clientId, round } = secureRound(request);
        return { advertised: await round.advertise(clientId, request) };
      },
      'secagg:share': (request) => {
        const { clientId, round } = secureRound(request);
        return round.share(clientId, request.boxes);
      },
      'secagg:survivors': async (request) => {
        const { clientId, round } = secureRound(request);
        return { survivors: await round.survivorsFor(clientId) };
      },
      'secagg:confirm': async (request) => {
        const { clientId, round } = secureRound(request);
        return { confirmations: await round.confirm(clientId, request.signature) };
      },
      'secagg:reveal': (request) => {
        const { clientId, round } = secureRound(request);
        round.reveal(clientId, request.shares);
        return { accepted: true as const };
      },
    };

    for (const event of Object.keys(handlers) as ClientEvent[]) {
      socket.on(event, (async (...args: unknown[]) => {
        const ack = typeof args.at(-1) === 'function' ? (args.pop() as (reply: unknown) => void) : undefined;
        try {
          if (!bucket.take()) throw new TributaryError('RATE_LIMITED', `more than ${rate.perSecond} messages a second`);
          const [payload, ...extra] = args;
          const value = await (handlers[event] as (request: unknown, extra: unknown[]) => unknown)(parse(event, payload), extra);
          ack?.({ ok: true, value });
        } catch (error) {
          if (!(error instanceof TributaryError)) log.error({ err: error, event }, 'socket handler failed');
          const body = toErrorBody(error);
          if (ack) ack({ ok: false, error: body });
          else socket.emit('server:error', body);
        }
      }) as never);
    }

    // Anything else a client sends: a coded answer, never silence.
    socket.onAny((event: string, ...args: unknown[]) => {
      if (Object.hasOwn(handlers, event)) return;
      const ack = args.at(-1);
      const body = new TributaryError('BAD_REQUEST', `unknown event ${JSON.stringify(String(event).slice(0, 40))}`).toBody();
      if (typeof ack === 'function') (ack as (reply: unknown) => void)({ ok: false, error: body });
      else socket.emit('server:error', body);
    });

    socket.on('disconnect', (reason) => {
      if (session) log.debug({ clientId: session.id, reason }, 'client disconnected');
      release();
    });
  });
}
