import { randomUUID } from 'node:crypto';
import type { Socket as NetSocket } from 'node:net';
import type { Logger } from 'pino';
import type { Server, Socket } from 'socket.io';
import { Compile } from 'typebox/compile';
import type { TSchema, Static } from 'typebox';
import { equalBytes, randomBytes } from '../shared/crypto.ts';
import { TributaryError, toErrorBody } from '../shared/errors.ts';
import {
  ChunkMeta,
  JoinRequest,
  ReadyRequest,
  type AdminClientToServerEvents,
  type AdminServerToClientEvents,
  type ClientToServerEvents,
  type JoinReply,
  type JoinRequest as JoinRequestType,
  type ServerToClientEvents,
} from '../shared/protocol.ts';
import { AdvertiseRequest, ConfirmRequest, RevealRequest, RoundRef, ShareRequest } from '../shared/secagg-protocol.ts';
import { ClientSession, type ClientLink, type ClientRegistry } from './clients.ts';
import type { Coordinator, RoundEvents } from './coordinator.ts';
import type { Store } from './store/store.ts';

export type ClientServer = Server<ClientToServerEvents, ServerToClientEvents>;
type ClientSocket = Socket<ClientToServerEvents, ServerToClientEvents>;

const validators = {
  join: Compile(JoinRequest),
  ready: Compile(ReadyRequest),
  chunk: Compile(ChunkMeta),
  advertise: Compile(AdvertiseRequest),
  share: Compile(ShareRequest),
  roundRef: Compile(RoundRef),
  confirm: Compile(ConfirmRequest),
  reveal: Compile(RevealRequest),
};

function parse<T extends TSchema>(validator: { Check(v: unknown): boolean; Errors(v: unknown): { message: string; instancePath?: string }[] }, value: unknown): Static<T> {
  if (validator.Check(value)) return value as Static<T>;
  const first = validator.Errors(value)[0];
  throw new TributaryError('BAD_REQUEST', first ? `${first.instancePath ?? ''} ${first.message}`.trim() : undefined);
}

const taskRoom = (taskId: number) => `task:${taskId}`;

/** A reconnect within this time keeps the client's session: mobile networks drop for seconds, not minutes. */
export const DEFAULT_SESSION_GRACE_MS = 30_000;

export interface GatewayOptions {
  store: Store;
  coordinator: Coordinator;
  clients: ClientRegistry;
  serverKey: Uint8Array;
  /** How long a disconnected client keeps its session (and its place in a round) for a reconnect. */
  sessionGraceMs?: number;
  log: Logger;
}

/** Round events go to the task's clients and to everyone watching on /admin. */
export function socketRoundEvents(io: ClientServer): RoundEvents {
  const admin = io.of('/admin') as unknown as Server<AdminClientToServerEvents, AdminServerToClientEvents>;
  return {
    roundStarted: (event) => admin.emit('round:started', event),
    uploadProgress: (event) => admin.emit('round:upload', event),
    roundAborted: (event) => admin.emit('round:aborted', event),
    roundComplete: (record, end) => {
      io.to(taskRoom(end.taskId)).emit('round:end', end);
      admin.emit('round:complete', record);
    },
    taskStatus: (event) => {
      io.to(taskRoom(event.taskId)).emit('task:status', event);
      admin.emit('task:status', event);
    },
  };
}

/**
 * The client-facing socket protocol. Every message is validated against its schema and
 * answered through its ack: a value, or a coded error. Nothing a client sends can throw
 * past this layer.
 */
export function attachGateway(io: ClientServer, options: GatewayOptions): void {
  const { store, coordinator, clients, serverKey, log } = options;
  const sessionGraceMs = options.sessionGraceMs ?? DEFAULT_SESSION_GRACE_MS;

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
    // Bytes read from this client's TCP connection, framing included (clients use websocket).
    const tcp = (socket.conn.request as { socket?: NetSocket }).socket;
    const link: ClientLink = {
      bytesRead: () => tcp?.bytesRead ?? 0,
      sendRoundStart: (start) => socket.emit('round:start', start),
    };

    const respond = async (args: unknown[], work: () => unknown): Promise<void> => {
      const ack = args.at(-1);
      try {
        const value = await work();
        if (typeof ack === 'function') ack({ ok: true, value });
      } catch (error) {
        if (!(error instanceof TributaryError)) log.error({ err: error }, 'socket handler failed');
        const body = toErrorBody(error);
        if (typeof ack === 'function') ack({ ok: false, error: body });
        else socket.emit('server:error', body);
      }
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

    /** The session a resume request names, if its token (and identity) match. */
    const resumable = (request: JoinRequestType, taskId: number): ClientSession | undefined => {
      const previous = request.resume && clients.get(request.resume.clientId);
      if (!previous || previous.taskId !== taskId || previous.connected) return undefined;
      const matches = equalBytes(previous.resumeToken, request.resume!.token) && equalBytes(previous.identityKey, request.identityKey);
      return matches ? previous : undefined;
    };

    socket.on('task:join', (...args: unknown[]) =>
      respond(args, async (): Promise<JoinReply> => {
        const request = parse<typeof JoinRequest>(validators.join, args[0]);
        const task = await store.getTask(request.taskId);
        if (!task) throw new TributaryError('TASK_NOT_FOUND', String(request.taskId));
        if (session) endSession(session); // joining again on one connection starts over
        session = undefined;
        const previous = resumable(request, task.id);
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
            shard: request.shard !== undefined && request.shard < shards ? request.shard : clients.freeShard(task.id, shards),
            resumeToken: randomBytes(32),
          });
          session.attach(link);
          clients.add(session);
        }
        await socket.join(taskRoom(task.id));
        log.info({ clientId: session.id, taskId: task.id, kind: request.kind, shard: session.shard, resumed: !!previous }, previous ? 'client resumed' : 'client joined');
        return { clientId: session.id, resumeToken: session.resumeToken, resumed: !!previous, serverKey, task, shard: session.shard };
      }),
    );

    socket.on('client:ready', (...args: unknown[]) =>
      respond(args, () => {
        const request = parse<typeof ReadyRequest>(validators.ready, args[0]);
        const client = requireSession(request.taskId);
        client.samples = request.samples;
        client.backend = request.backend;
        client.cachedVersion = request.cachedVersion;
        client.paused = request.paused ?? false;
        coordinator.runner(request.taskId)?.clientsChanged();
        return { selected: false };
      }),
    );

    socket.on('update:chunk', (...args: unknown[]) =>
      respond(args, () => {
        const meta = parse<typeof ChunkMeta>(validators.chunk, args[0]);
        const data = args[1];
        if (!(data instanceof Uint8Array)) throw new TributaryError('BAD_REQUEST', 'chunk data must be binary');
        const client = requireSession(meta.taskId);
        const runner = coordinator.runner(meta.taskId);
        if (!runner) throw new TributaryError('TASK_NOT_RUNNING');
        return runner.acceptChunk(client.id, meta, data);
      }),
    );

    /** The running secure round of the task, for a participant's message about that round. */
    const secureRound = (ref: { taskId: number; round: number }) => {
      const client = requireSession(ref.taskId);
      const runner = coordinator.runner(ref.taskId);
      if (!runner) throw new TributaryError('TASK_NOT_RUNNING');
      return { clientId: client.id, round: runner.secureRound(ref.round) };
    };

    socket.on('secagg:advertise', (...args: unknown[]) =>
      respond(args, async () => {
        const request = parse<typeof AdvertiseRequest>(validators.advertise, args[0]);
        const { clientId, round } = secureRound(request);
        return { advertised: await round.advertise(clientId, request) };
      }),
    );

    socket.on('secagg:share', (...args: unknown[]) =>
      respond(args, () => {
        const request = parse<typeof ShareRequest>(validators.share, args[0]);
        const { clientId, round } = secureRound(request);
        return round.share(clientId, request.boxes);
      }),
    );

    socket.on('secagg:survivors', (...args: unknown[]) =>
      respond(args, async () => {
        const request = parse<typeof RoundRef>(validators.roundRef, args[0]);
        const { clientId, round } = secureRound(request);
        return { survivors: await round.survivorsFor(clientId) };
      }),
    );

    socket.on('secagg:confirm', (...args: unknown[]) =>
      respond(args, async () => {
        const request = parse<typeof ConfirmRequest>(validators.confirm, args[0]);
        const { clientId, round } = secureRound(request);
        return { confirmations: await round.confirm(clientId, request.signature) };
      }),
    );

    socket.on('secagg:reveal', (...args: unknown[]) =>
      respond(args, () => {
        const request = parse<typeof RevealRequest>(validators.reveal, args[0]);
        const { clientId, round } = secureRound(request);
        round.reveal(clientId, request.shares);
        return { accepted: true as const };
      }),
    );

    socket.on('disconnect', (reason) => {
      if (session) log.debug({ clientId: session.id, reason }, 'client disconnected');
      release();
    });
  });
}
