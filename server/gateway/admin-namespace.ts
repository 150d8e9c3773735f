import type { FastifyPluginAsync } from 'fastify';
import type { DefaultEventsMap, Namespace } from 'socket.io';
import { TributaryError, type ErrorCode } from '../../shared/errors.ts';
import type { AdminClientToServerEvents, AdminServerToClientEvents } from '../../shared/protocol/events.ts';
import { authenticate, SESSION_COOKIE } from '../auth/access.ts';
import type { Accounts, CredentialEnd } from '../auth/accounts.ts';
import { requestOrigin, type TrustProxy } from '../auth/client-address.ts';
import type { RoundEvents } from '../rounds/runner.ts';
import { startClientFeed } from './client-feed.ts';
import type { ClientRegistry } from './clients.ts';
import { taskRoom } from './connection.ts';
import type { ClientServer } from './gateway.ts';

/** What an /admin socket connected with: it is disconnected when that ends. */
interface Credential {
  userId: number;
  sessionHash?: string;
  apiTokenId?: number;
}

type AdminNamespace = Namespace<AdminClientToServerEvents, AdminServerToClientEvents, DefaultEventsMap, { credential: Credential }>;

const adminOf = (io: ClientServer) => io.of('/admin') as unknown as AdminNamespace;

/** Round events go to the task's clients and to everyone watching on /admin. */
export function socketRoundEvents(io: ClientServer): RoundEvents {
  const admin = adminOf(io);
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

/** Expired sessions are looked for this often: no /admin socket outlives its session by more. */
const SESSION_SWEEP_MS = 60_000;

export interface AdminNamespaceOptions {
  io: ClientServer;
  accounts: Accounts;
  clients: ClientRegistry;
  /** Besides the server's own origin, the origins whose pages may connect with the session cookie. */
  corsOrigins: string[];
  trustProxy?: TrustProxy;
}

const refusal = (code: ErrorCode, detail?: string) => {
  const error = new TributaryError(code, detail);
  return Object.assign(new Error(error.message), { data: error.toBody() });
};

const uses = (credential: Credential, end: CredentialEnd) =>
  end.kind === 'user' ? credential.userId === end.userId : end.kind === 'session' ? credential.sessionHash === end.sessionHash : credential.apiTokenId === end.tokenId;

/**
 * The watchers' namespace, `/admin`: signed-in users (session cookie) or API tokens only.
 * The SameSite cookie still rides along from other origins of the same site (another
 * port, a sibling subdomain), so a socket that signs in with it must come from the
 * server's own origin or a configured one (browsers always send Origin on a WebSocket
 * handshake, the dashboard's only transport); a token is never ambient, so token sockets
 * (tools, which send no Origin) need none. A socket is disconnected when
 * its session ends (logout, expiry), its token is revoked, or its user changes role or is
 * disabled. Sockets get the round events (socketRoundEvents) and the connected-clients
 * table, which runs until the app closes. Needs @fastify/cookie registered first.
 */
export const adminNamespace: FastifyPluginAsync<AdminNamespaceOptions> = async (app, { io, accounts, clients, corsOrigins, trustProxy }) => {
  const admin = adminOf(io);
  admin.use((socket, next) => {
    const bearer = typeof socket.handshake.auth.token === 'string' ? socket.handshake.auth.token : undefined;
    const sessionId = bearer ? undefined : app.parseCookie(socket.request.headers.cookie ?? '')[SESSION_COOKIE];
    const origin = socket.handshake.headers.origin;
    if (sessionId && !(origin && (origin === requestOrigin(socket.handshake, trustProxy) || corsOrigins.includes(origin)))) {
      return next(refusal('FORBIDDEN', `a session cookie is not taken from ${origin ? `origin ${origin}` : 'a socket without an Origin'}`));
    }
    authenticate(accounts, { sessionId, bearer }).then((principal) => {
      if (!principal) return next(refusal('UNAUTHORIZED'));
      socket.data.credential = { userId: principal.user.id, sessionHash: principal.session?.idHash, apiTokenId: principal.apiTokenId };
      next();
    }, (error: unknown) => next(error as Error));
  });
  const stopWatching = accounts.onCredentialEnd((end) => {
    for (const socket of admin.sockets.values()) if (socket.data.credential && uses(socket.data.credential, end)) socket.disconnect();
  });
  const sweep = setInterval(() => {
    accounts.endExpiredSessions().catch((error: unknown) => app.log.error({ err: error }, 'could not end expired sessions'));
  }, SESSION_SWEEP_MS);
  sweep.unref();
  const stopClientFeed = startClientFeed(admin, clients);
  app.addHook('onClose', async () => {
    clearInterval(sweep);
    stopWatching();
    stopClientFeed();
  });
};
