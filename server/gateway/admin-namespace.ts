import type { FastifyPluginAsync } from 'fastify';
import type { Namespace } from 'socket.io';
import type { AdminClientToServerEvents, AdminServerToClientEvents } from '../../shared/protocol/events.ts';
import { authenticate, SESSION_COOKIE } from '../auth/access.ts';
import type { Accounts } from '../auth/accounts.ts';
import type { RoundEvents } from '../rounds/runner.ts';
import { startClientFeed } from './client-feed.ts';
import type { ClientRegistry } from './clients.ts';
import { taskRoom } from './connection.ts';
import type { ClientServer } from './gateway.ts';

type AdminNamespace = Namespace<AdminClientToServerEvents, AdminServerToClientEvents>;

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

/**
 * The watchers' namespace, `/admin`: signed-in users (session cookie) or API tokens only.
 * They get the round events (socketRoundEvents) and the connected-clients table, which
 * runs until the app closes. Needs @fastify/cookie registered first.
 */
export const adminNamespace: FastifyPluginAsync<{ io: ClientServer; accounts: Accounts; clients: ClientRegistry }> = async (app, { io, accounts, clients }) => {
  const admin = adminOf(io);
  admin.use((socket, next) => {
    const cookies = app.parseCookie(socket.request.headers.cookie ?? '');
    const bearer = typeof socket.handshake.auth.token === 'string' ? socket.handshake.auth.token : undefined;
    authenticate(accounts, { sessionId: cookies[SESSION_COOKIE], bearer }).then(
      (principal) => next(principal ? undefined : Object.assign(new Error('Sign in, or present a valid token'), { data: { code: 'UNAUTHORIZED' } })),
      (error: unknown) => next(error as Error),
    );
  });
  const stopClientFeed = startClientFeed(admin, clients);
  app.addHook('onClose', async () => stopClientFeed());
};
