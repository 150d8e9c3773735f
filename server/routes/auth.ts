import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { actorOf, SESSION_COOKIE } from '../auth/access.ts';
import type { Accounts, NewAccount } from '../auth/accounts.ts';
import { Role, type User } from '../auth/model.ts';
import { PASSWORD_MAX, PASSWORD_MIN } from '../auth/passwords.ts';
import { ErrorReply } from './errors.ts';

export interface AuthRoutesOptions {
  accounts: Accounts;
}

const Username = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._@-]+$' });
const Password = Type.String({ minLength: PASSWORD_MIN, maxLength: PASSWORD_MAX });
const PublicUser = Type.Object({ id: Type.Integer(), username: Type.String(), role: Role, disabled: Type.Boolean(), createdAt: Type.String() });
const NewAccountReply = Type.Object({ user: PublicUser, totpSecret: Type.String(), totpUri: Type.String(), recoveryCodes: Type.Array(Type.String()) });
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });

const publicUser = (u: User) => ({ id: u.id, username: u.username, role: u.role, disabled: u.disabled, createdAt: u.createdAt });
const newAccount = (a: NewAccount) => ({ user: publicUser(a.user), totpSecret: a.totpSecret, totpUri: a.totpUri, recoveryCodes: a.recoveryCodes });

/** Logins are throttled per address: ten tries a minute, then RATE_LIMITED. */
const LOGIN_LIMIT = { max: 10, timeWindow: 60_000 };

/** First-run setup, login and logout, the signed-in user, users (admin) and API tokens. */
export const authRoutes: FastifyPluginAsync<AuthRoutesOptions> = async (app, { accounts }) => {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const me = (request: { principal?: { user: User } }) => request.principal!.user;

  api.get('/auth/status', {
    config: { access: 'public' },
    schema: { summary: 'Whether the server still waits for its first admin (see the setup token in its log)', tags: ['auth'], response: { 200: Type.Object({ setupNeeded: Type.Boolean() }) } },
  }, async () => ({ setupNeeded: (await accounts.setupTokenIfNeeded()) !== undefined }));

  api.post('/auth/setup', {
    config: { access: 'public', rateLimit: LOGIN_LIMIT },
    schema: {
      summary: 'Create the first admin with the one-time setup token; returns the TOTP secret and recovery codes, once',
      tags: ['auth'],
      body: Type.Object({ token: Type.String({ maxLength: 200 }), username: Username, password: Password }, { additionalProperties: false }),
      response: { 201: NewAccountReply, 403: ErrorReply },
    },
  }, async (request, reply) => {
    reply.code(201);
    return newAccount(await accounts.setup(request.body.token, request.body.username, request.body.password, request.ip));
  });

  api.post('/auth/login', {
    config: { access: 'public', rateLimit: LOGIN_LIMIT },
    schema: {
      summary: 'Password and a TOTP (or recovery) code; sets an httpOnly session cookie and returns the CSRF token',
      tags: ['auth'],
      body: Type.Object({ username: Username, password: Type.String({ maxLength: PASSWORD_MAX }), code: Type.Optional(Type.String({ maxLength: 40 })) }, { additionalProperties: false }),
      response: { 200: Type.Object({ user: PublicUser, csrfToken: Type.String() }), 401: ErrorReply, 429: ErrorReply },
    },
  }, async (request, reply) => {
    const { sessionId, session, user } = await accounts.login(request.body.username, request.body.password, request.body.code, request.ip);
    void reply.setCookie(SESSION_COOKIE, sessionId, {
      httpOnly: true,
      sameSite: 'strict',
      secure: request.protocol === 'https',
      path: '/',
      maxAge: Math.floor((session.expiresAt - Date.now()) / 1000),
    });
    return { user: publicUser(user), csrfToken: session.csrfToken };
  });

  api.post('/auth/logout', {
    config: { access: 'viewer' },
    schema: { summary: 'End this session', tags: ['auth'], response: { 204: Type.Null() } },
  }, async (request, reply) => {
    const sessionId = request.cookies[SESSION_COOKIE];
    if (sessionId) await accounts.logout(sessionId, request.ip);
    void reply.clearCookie(SESSION_COOKIE, { path: '/' });
    reply.code(204);
    return null;
  });

  api.get('/auth/me', {
    config: { access: 'viewer' },
    schema: { summary: 'The signed-in user, and the CSRF token of this session', tags: ['auth'], response: { 200: Type.Object({ user: PublicUser, csrfToken: Type.Union([Type.String(), Type.Null()]) }) } },
  }, (request) => ({ user: publicUser(me(request)), csrfToken: request.principal!.session?.csrfToken ?? null }));

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
