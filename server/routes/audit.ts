import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AuditLog } from '../auth/model.ts';

const Entry = Type.Object({
  id: Type.Integer(),
  at: Type.String(),
  actor: Type.String(),
  action: Type.String(),
  target: Type.String(),
  detail: Type.Record(Type.String(), Type.Unknown()),
  ip: Type.String(),
});

/** The audit trail, newest first, for admins. */
export const auditRoutes: FastifyPluginAsync<{ audit: AuditLog }> = async (app, { audit }) => {
  app.withTypeProvider<TypeBoxTypeProvider>().get('/audit', {
    config: { access: 'admin' },
    schema: {
      summary: 'Logins, failed logins, user and role changes, task and round events, tokens and enrollments',
      tags: ['audit'],
      querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })), before: Type.Optional(Type.Integer({ minimum: 1 })) }),
      response: { 200: Type.Array(Entry) },
    },
  }, (request) => audit.list({ limit: request.query.limit ?? 200, ...(request.query.before === undefined ? {} : { beforeId: request.query.before }) }));
};
