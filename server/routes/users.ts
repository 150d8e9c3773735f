import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { actorOf } from '../auth/access.ts';
import { Role } from '../auth/model.ts';
import { me, newAccount, NewAccountReply, Password, PublicUser, publicUser, Username, type AuthRoutesOptions } from './auth.ts';
import { ErrorReply } from './errors.ts';

const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });

/** Users (admins manage them) and each user's own API tokens. */
export const userRoutes: FastifyPluginAsync<AuthRoutesOptions> = async (app, { accounts }) => {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();

  api.get('/users', {
    config: { access: 'admin' },
    schema: { summary: 'All users', tags: ['users'], response: { 200: Type.Array(PublicUser) } },
  }, async () => (await accounts.listUsers()).map(publicUser));

  api.post('/users', {
    config: { access: 'admin' },
    schema: {
      summary: 'Create a user; returns their TOTP secret and recovery codes, once',
      tags: ['users'],
      body: Type.Object({ username: Username, password: Password, role: Role }, { additionalProperties: false }),
      response: { 201: NewAccountReply, 409: ErrorReply },
    },
  }, async (request, reply) => {
    reply.code(201);
    return newAccount(await accounts.createUser(request.body.username, request.body.password, request.body.role, actorOf(request)));
  });

  api.patch('/users/:id', {
    config: { access: 'admin' },
    schema: {
      summary: "Change a user's role, or disable them (their sessions end)",
      tags: ['users'],
      params: IdParams,
      body: Type.Object({ role: Type.Optional(Role), disabled: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      response: { 200: PublicUser, 404: ErrorReply, 409: ErrorReply },
    },
  }, async (request) => publicUser(await accounts.updateUser(me(request), request.params.id, request.body, request.ip)));

  const ApiToken = Type.Object({ id: Type.Integer(), name: Type.String(), createdAt: Type.String(), revokedAt: Type.Union([Type.String(), Type.Null()]) });
  api.get('/api-tokens', {
    config: { access: 'viewer' },
    schema: { summary: 'Your API tokens (without their secrets)', tags: ['users'], response: { 200: Type.Array(ApiToken) } },
  }, async (request) => (await accounts.listApiTokens(me(request))).map(({ id, name, createdAt, revokedAt }) => ({ id, name, createdAt, revokedAt })));

  api.post('/api-tokens', {
    config: { access: 'viewer' },
    schema: {
      summary: 'A bearer token acting as you (for scripts); shown once',
      tags: ['users'],
      body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 80 }) }, { additionalProperties: false }),
      response: { 201: Type.Object({ id: Type.Integer(), token: Type.String() }) },
    },
  }, async (request, reply) => {
    reply.code(201);
    return accounts.createApiToken(me(request), request.body.name, request.ip);
  });

  api.delete('/api-tokens/:id', {
    config: { access: 'viewer' },
    schema: { summary: 'Revoke one of your API tokens', tags: ['users'], params: IdParams, response: { 204: Type.Null(), 404: ErrorReply } },
  }, async (request, reply) => {
    await accounts.revokeApiToken(me(request), request.params.id, request.ip);
    reply.code(204);
    return null;
  });
};
