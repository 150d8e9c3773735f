import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { fromBase64 } from '../../shared/crypto/sodium.ts';
import { TributaryError } from '../../shared/errors.ts';
import { actorOf } from '../auth/access.ts';
import type { Enrollments } from '../auth/enrollment.ts';
import { EnrollmentKind, type Enrollment, type EnrollmentToken } from '../auth/model.ts';
import { ErrorReply } from './errors.ts';

export interface EnrollmentRoutesOptions {
  enrollments: Enrollments;
}

const TaskParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });
const EnrollmentParams = Type.Object({ id: Type.Integer({ minimum: 1 }), key: Type.String({ pattern: '^[0-9a-f]{64}$' }) });
const IdentityKey = Type.String({ minLength: 40, maxLength: 64, description: "The client's Ed25519 public key, base64" });
const TokenRecord = Type.Object({
  id: Type.Integer(),
  taskId: Type.Integer(),
  kind: EnrollmentKind,
  label: Type.String(),
  createdBy: Type.String(),
  createdAt: Type.String(),
  expiresAt: Type.Union([Type.String(), Type.Null()]),
  revokedAt: Type.Union([Type.String(), Type.Null()]),
  uses: Type.Integer(),
  maxUses: Type.Integer(),
});
const EnrollmentRecord = Type.Object({
  taskId: Type.Integer(),
  identityKey: Type.String(),
  kind: EnrollmentKind,
  tokenId: Type.Union([Type.Integer(), Type.Null()]),
  createdAt: Type.String(),
  revokedAt: Type.Union([Type.String(), Type.Null()]),
});
const Enrolled = Type.Object({ taskId: Type.Integer(), kind: EnrollmentKind });

const tokenView = ({ tokenHash: _hash, ...rest }: EnrollmentToken) => rest;
const enrolledView = (e: Enrollment) => ({ taskId: e.taskId, kind: e.kind });

function identityKey(text: string): Uint8Array {
  const key = fromBase64(text);
  if (key.length !== 32) throw new TributaryError('BAD_REQUEST', 'identityKey must be 32 bytes');
  return key;
}

/**
 * A token minted without limits enrolls one device within a week: a leaked invite is worth
 * little, and an operator enrolling a fleet says so (maxUses, or 0 for any number).
 */
const DEFAULT_TOKEN = { maxUses: 1, expiresInHours: 24 * 7 };

/** Enrollment attempts are throttled per address. */
const ENROLL_LIMIT = { max: 30, timeWindow: 60_000 };

/** Enrollment tokens (operators), enrollments, and the public enroll endpoints devices call. */
export const enrollmentRoutes: FastifyPluginAsync<EnrollmentRoutesOptions> = async (app, { enrollments }) => {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();

  api.get('/tasks/:id/enrollment-tokens', {
    config: { access: 'operator' },
    schema: { summary: "A task's enrollment tokens (without their secrets)", tags: ['enrollment'], params: TaskParams, response: { 200: Type.Array(TokenRecord) } },
  }, async (request) => (await enrollments.listTokens(request.params.id)).map(tokenView));

  api.post('/tasks/:id/enrollment-tokens', {
    config: { access: 'operator' },
    schema: {
      summary: 'Mint an enrollment token for devices (kind client) or GPU nodes (kind gpu); shown once',
      tags: ['enrollment'],
      params: TaskParams,
      body: Type.Object({
        kind: EnrollmentKind,
        label: Type.String({ minLength: 1, maxLength: 80 }),
        maxUses: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, default: DEFAULT_TOKEN.maxUses, description: 'Devices it may enroll; 0: any number' })),
        expiresInHours: Type.Optional(Type.Number({ minimum: 0, maximum: 24 * 366, default: DEFAULT_TOKEN.expiresInHours, description: 'Hours until it expires; 0: never' })),
      }, { additionalProperties: false }),
      response: { 201: Type.Object({ token: Type.String(), record: TokenRecord }), 404: ErrorReply },
    },
  }, async (request, reply) => {
    const { token, record } = await enrollments.createToken(
      request.params.id,
      { kind: request.body.kind, label: request.body.label, maxUses: request.body.maxUses ?? DEFAULT_TOKEN.maxUses, expiresInHours: request.body.expiresInHours ?? DEFAULT_TOKEN.expiresInHours },
      actorOf(request),
    );
    reply.code(201);
    return { token, record: tokenView(record) };
  });

  api.delete('/enrollment-tokens/:id', {
    config: { access: 'operator' },
    schema: { summary: 'Revoke a token, and every enrollment made with it', tags: ['enrollment'], params: TaskParams, response: { 200: TokenRecord, 404: ErrorReply } },
  }, async (request) => tokenView(await enrollments.revokeToken(request.params.id, actorOf(request))));

  api.get('/tasks/:id/enrollments', {
    config: { access: 'viewer' },
    schema: { summary: 'Devices enrolled in a task', tags: ['enrollment'], params: TaskParams, response: { 200: Type.Array(EnrollmentRecord) } },
  }, (request) => enrollments.listEnrollments(request.params.id));

  /** An operator's word on one device's enrollment (revoke, restore), answered 204. */
  const onEnrollment = (method: 'DELETE' | 'POST', url: string, act: (taskId: number, identityKey: string, by: { actor: string; ip: string }) => Promise<void>, summary: string) => api.route({
    method,
    url,
    config: { access: 'operator' },
    schema: { summary, tags: ['enrollment'], params: EnrollmentParams, response: { 204: Type.Null(), 403: ErrorReply } },
    handler: async (request, reply) => {
      await act(request.params.id, request.params.key, actorOf(request));
      reply.code(204);
      return null;
    },
  });
  onEnrollment('DELETE', '/tasks/:id/enrollments/:key', (id, key, by) => enrollments.revokeEnrollment(id, key, by),
    "Revoke one device's enrollment (its identity key, hex): its sessions end now, and it stays out until restored");
  onEnrollment('POST', '/tasks/:id/enrollments/:key/restore', (id, key, by) => enrollments.restoreEnrollment(id, key, by),
    "Restore a revoked device's enrollment (its identity key, hex): it may join again; no token or open enrollment can");

  api.post('/enroll', {
    config: { access: 'public', rateLimit: ENROLL_LIMIT },
    schema: {
      summary: "Bind a device's identity key to the task of an enrollment token",
      tags: ['enrollment'],
      body: Type.Object({ token: Type.String({ minLength: 1, maxLength: 200 }), identityKey: IdentityKey }, { additionalProperties: false }),
      response: { 200: Enrolled, 403: ErrorReply, 429: ErrorReply },
    },
  }, async (request) => enrolledView(await enrollments.enrollWithToken(request.body.token, identityKey(request.body.identityKey), request.ip)));

  api.post('/tasks/:id/enroll', {
    config: { access: 'public', rateLimit: ENROLL_LIMIT },
    schema: {
      summary: 'Bind a device to a task with open enrollment (public contribute pages)',
      tags: ['enrollment'],
      params: TaskParams,
      body: Type.Object({ identityKey: IdentityKey }, { additionalProperties: false }),
      response: { 200: Enrolled, 403: ErrorReply, 404: ErrorReply, 429: ErrorReply },
    },
  }, async (request) => enrolledView(await enrollments.enrollOpen(request.params.id, identityKey(request.body.identityKey), request.ip)));
};
