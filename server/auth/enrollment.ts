import { fingerprint } from '../../shared/crypto/sodium.ts';
import { TributaryError } from '../../shared/errors.ts';
import type { ClientKind } from '../../shared/protocol/events.ts';
import { requireTask, type Store } from '../store/store.ts';
import type { AuditLog, Enrollment, EnrollmentKind, EnrollmentStore, EnrollmentToken } from './model.ts';
import { newSecret, secretHash } from './secrets.ts';

/** Which enrollment a client kind needs: GPU nodes their own, browsers and edge devices the client kind. */
export function enrollmentKindFor(kind: ClientKind): EnrollmentKind {
  return kind === 'gpu' ? 'gpu' : 'client';
}

const hex = (key: Uint8Array) => Buffer.from(key).toString('hex');

/**
 * Who may train on a task. Operators mint per-task enrollment tokens (client or GPU
 * kind); a device presents one once with its long-term identity key, which binds that key
 * to the task. Afterwards the device proves the key at every join and needs no token.
 * Tasks with open enrollment let any device bind itself (rate-limited), for public
 * contribute pages. Revoking a token revokes the enrollments made with it.
 */
export class Enrollments {
  constructor(
    private readonly store: EnrollmentStore,
    private readonly tasks: Store,
    private readonly audit: AuditLog,
  ) {}

  async createToken(
    taskId: number,
    options: { kind: EnrollmentKind; label: string; maxUses: number; expiresInHours: number },
    by: { actor: string; ip: string },
  ): Promise<{ token: string; record: EnrollmentToken }> {
    await requireTask(this.tasks, taskId);
    const token = newSecret(options.kind === 'gpu' ? 'trb_gpu' : 'trb_enroll');
    const expiresAt = options.expiresInHours > 0 ? new Date(Date.now() + options.expiresInHours * 3600_000).toISOString() : null;
    const record = await this.store.createToken({ taskId, kind: options.kind, label: options.label, tokenHash: secretHash(token), createdBy: by.actor, expiresAt, maxUses: options.maxUses });
    await this.audit.record({ actor: by.actor, action: 'token.create', target: `task ${taskId}`, detail: { id: record.id, kind: options.kind, label: options.label }, ip: by.ip });
    return { token, record };
  }

  async revokeToken(id: number, by: { actor: string; ip: string }): Promise<EnrollmentToken> {
    const record = await this.store.tokenById(id);
    if (!record) throw new TributaryError('TOKEN_NOT_FOUND', String(id));
    await this.store.revokeToken(id);
    await this.audit.record({ actor: by.actor, action: 'token.revoke', target: `task ${record.taskId}`, detail: { id, label: record.label }, ip: by.ip });
    return (await this.store.tokenById(id))!;
  }

  listTokens(taskId: number): Promise<EnrollmentToken[]> {
    return this.store.listTokens(taskId);
  }

  listEnrollments(taskId: number): Promise<Enrollment[]> {
    return this.store.listEnrollments(taskId);
  }

  async revokeEnrollment(taskId: number, identityKey: string, by: { actor: string; ip: string }): Promise<void> {
    if (!(await this.store.revokeEnrollment(taskId, identityKey))) throw new TributaryError('NOT_ENROLLED');
    await this.audit.record({ actor: by.actor, action: 'enrollment.revoke', target: `task ${taskId}`, detail: { identityKey }, ip: by.ip });
  }

  /** Binds `identityKey` to the token's task. */
  async enrollWithToken(token: string, identityKey: Uint8Array, ip: string): Promise<Enrollment> {
    const record = await this.store.tokenByHash(secretHash(token));
    const actor = `client:${fingerprint(identityKey)}`;
    const usable = record && !record.revokedAt && (!record.expiresAt || Date.parse(record.expiresAt) > Date.now()) && (record.maxUses === 0 || record.uses < record.maxUses);
    if (!record || !usable) {
      await this.audit.record({ actor, action: 'enroll.refused', target: record ? `task ${record.taskId}` : 'unknown token', detail: { tokenId: record?.id ?? null }, ip });
      throw new TributaryError('ENROLLMENT_TOKEN_INVALID');
    }
    let enrollment: Enrollment;
    try {
      enrollment = await this.store.enroll({ taskId: record.taskId, identityKey: hex(identityKey), kind: record.kind, tokenId: record.id });
    } catch (error) {
      // Used up by an enrollment that raced this one.
      if (error instanceof TributaryError && error.code === 'ENROLLMENT_TOKEN_INVALID') {
        await this.audit.record({ actor, action: 'enroll.refused', target: `task ${record.taskId}`, detail: { tokenId: record.id }, ip });
      }
      throw error;
    }
    await this.audit.record({ actor, action: 'enroll', target: `task ${record.taskId}`, detail: { tokenId: record.id, kind: record.kind }, ip });
    return enrollment;
  }

  /** Binds `identityKey` to a task that allows open enrollment. */
  async enrollOpen(taskId: number, identityKey: Uint8Array, ip: string): Promise<Enrollment> {
    const task = await requireTask(this.tasks, taskId);
    if (!task.spec.openEnrollment) throw new TributaryError('ENROLLMENT_TOKEN_INVALID', 'this task needs an enrollment token');
    const enrollment = await this.store.enroll({ taskId, identityKey: hex(identityKey), kind: 'client', tokenId: null });
    await this.audit.record({ actor: `client:${fingerprint(identityKey)}`, action: 'enroll.open', target: `task ${taskId}`, detail: {}, ip });
    return enrollment;
  }

  /** Refuses a client whose key is not (or no longer) enrolled in the task for its kind. */
  async check(taskId: number, identityKey: Uint8Array, kind: ClientKind): Promise<void> {
    const enrollment = await this.store.enrollment(taskId, hex(identityKey));
    if (!enrollment || enrollment.revokedAt) throw new TributaryError('NOT_ENROLLED', `task ${taskId}`);
    if (enrollment.kind !== enrollmentKindFor(kind)) throw new TributaryError('NOT_ENROLLED', `enrolled as ${enrollment.kind}, joined as ${kind}`);
  }
}
