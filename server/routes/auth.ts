import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { SESSION_COOKIE } from '../auth/access.ts';
import type { Accounts, NewAccount } from '../auth/accounts.ts';
import { Role, type User } from '../auth/model.ts';
import { PASSWORD_MAX, PASSWORD_MIN } from '../auth/passwords.ts';
import { ErrorReply } from './errors.ts';

export interface AuthRoutesOptions {
  accounts: Accounts;
}

export const Username = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._@-]+$' });
export const Password = Type.String({ minLength: PASSWORD_MIN, maxLength: PASSWORD_MAX });
export const PublicUser = Type.Object({ id: Type.Integer(), username: Type.String(), role: Role, disabled: Type.Boolean(), createdAt: Type.String() });
export const NewAccountReply = Type.Object({ user: PublicUser, totpSecret: Type.String(), totpUri: Type.String(), recoveryCodes: Type.Array(Type.String()) });

export const publicUser = (u: User) => ({ id: u.id, username: u.username, role: u.role, disabled: u.disabled, createdAt: u.createdAt });
export const newAccount = (a: NewAccount) => ({ user: publicUser(a.user), totpSecret: a.totpSecret, totpUri: a.totpUri, recoveryCodes: a.recoveryCodes });

/** The signed-in user of a request that passed its route's access rule. */
export const me = (request: { principal?: { user: User } }) => request.principal!.user;

/** Logins are throttled per address: ten tries a minute, then RATE_LIMITED (and per account, by Accounts). */
const LOGIN_LIMIT = { max: 10, timeWindow: 60_000 };

/** First-run setup, login and logout, the signed-in user. */
export const authRoutes: FastifyPluginAsync<AuthRoutesOptions> = async (app, { accounts }) => {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();

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

};
