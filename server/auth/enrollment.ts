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

/** Told, as soon as they are revoked, which identity keys (hex) of a task lost their enrollment. */
export type RevocationListener = (taskId: number, identityKeys: readonly string[]) => void;

/**
 * Who may train on a task. Operators mint per-task enrollment tokens (client or GPU
 * kind); a device presents one once with its long-term identity key, which binds that key
 * to the task. Afterwards the device proves the key at every join and needs no token.
 * Tasks with open enrollment let any device bind itself (rate-limited), for public
 * contribute pages. Revoking a token revokes the enrollments made with it; a revoked key
 * stays out, whatever token it presents, until an operator restores it.
 */
export class Enrollments {
  private readonly listeners = new Set<RevocationListener>();
  private revocationCount = 0;

  constructor(
    private readonly store: EnrollmentStore,
    private readonly tasks: Store,
    private readonly audit: AuditLog,
  ) {}

  /** Calls `listener` at every revocation (the gateway ends those keys' sessions); returns the unsubscribe. */
  onRevoked(listener: RevocationListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * How many revocations have taken effect. A join reads it before its enrollment check and
   * again when it makes the session: a change means a revocation may have come in between,
   * after the check and before the session its listener would have ended.
   */
  get revocations(): number {
    return this.revocationCount;
  }

  private revoked(taskId: number, identityKeys: readonly string[]): void {
    if (identityKeys.length === 0) return;
    this.revocationCount++;
    for (const listener of this.listeners) listener(taskId, identityKeys);
  }

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
    this.revoked(record.taskId, await this.store.revokeToken(id));
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
    this.revoked(taskId, [identityKey]);
    await this.audit.record({ actor: by.actor, action: 'enrollment.revoke', target: `task ${taskId}`, detail: { identityKey }, ip: by.ip });
  }

  /** Lets a revoked device (its identity key, hex) join the task again. */
  async restoreEnrollment(taskId: number, identityKey: string, by: { actor: string; ip: string }): Promise<void> {
    if (!(await this.store.restoreEnrollment(taskId, identityKey))) throw new TributaryError('NOT_ENROLLED', 'no revoked enrollment of that key in that task');
    await this.audit.record({ actor: by.actor, action: 'enrollment.restore', target: `task ${taskId}`, detail: { identityKey }, ip: by.ip });
  }

  /**
   * Binds `identityKey` to the token's task. A device bound already gets its binding back
   * whatever the token's state (a reloaded page presents its one-use token again); the
   * store checks and counts a new use in one step.
   */
  async enrollWithToken(token: string, identityKey: Uint8Array, ip: string): Promise<Enrollment> {
    const record = await this.store.tokenByHash(secretHash(token));
    const actor = `client:${fingerprint(identityKey)}`;
    const refused = (target: string) => this.audit.record({ actor, action: 'enroll.refused', target, detail: { tokenId: record?.id ?? null }, ip });
    if (!record) {
      await refused('unknown token');
      throw new TributaryError('ENROLLMENT_TOKEN_INVALID');
    }
    const enrollment = await this.refusalsAudited(() => refused(`task ${record.taskId}`), this.store.enroll({ taskId: record.taskId, identityKey: hex(identityKey), kind: record.kind, tokenId: record.id }));
    await this.audit.record({ actor, action: 'enroll', target: `task ${record.taskId}`, detail: { tokenId: record.id, kind: record.kind }, ip });
    return enrollment;
  }

  /** Binds `identityKey` to a task that allows open enrollment. */
  async enrollOpen(taskId: number, identityKey: Uint8Array, ip: string): Promise<Enrollment> {
    const task = await requireTask(this.tasks, taskId);
    if (!task.spec.openEnrollment) throw new TributaryError('ENROLLMENT_TOKEN_INVALID', 'this task needs an enrollment token');
    const actor = `client:${fingerprint(identityKey)}`;
    const refused = () => this.audit.record({ actor, action: 'enroll.refused', target: `task ${taskId}`, detail: { tokenId: null }, ip });
    const enrollment = await this.refusalsAudited(refused, this.store.enroll({ taskId, identityKey: hex(identityKey), kind: 'client', tokenId: null }));
    await this.audit.record({ actor, action: 'enroll.open', target: `task ${taskId}`, detail: {}, ip });
    return enrollment;
  }

  /** The store's refusals (a token revoked, expired or used up, maybe by a racing enrollment; a revoked key) go to the audit log. */
  private async refusalsAudited<T>(audit: () => Promise<void>, work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (error) {
      if (error instanceof TributaryError && (error.code === 'ENROLLMENT_TOKEN_INVALID' || error.code === 'NOT_ENROLLED')) await audit();
      throw error;
    }
  }

  /** Refuses a client whose key is not (or no longer) enrolled in the task for its kind. */
  async check(taskId: number, identityKey: Uint8Array, kind: ClientKind): Promise<void> {
    const enrollment = await this.store.enrollment(taskId, hex(identityKey));
    if (!enrollment || enrollment.revokedAt) throw new TributaryError('NOT_ENROLLED', `task ${taskId}`);
    if (enrollment.kind !== enrollmentKindFor(kind)) throw new TributaryError('NOT_ENROLLED', `enrolled as ${enrollment.kind}, joined as ${kind}`);
  }
}
