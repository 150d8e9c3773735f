import type { Enrollment, EnrollmentKind, EnrollmentToken } from '../../auth/model.ts';

/** An `enrollment_tokens` row, alike in SQLite and PostgreSQL. */
export interface TokenRow {
  id: number;
  task_id: number;
  kind: EnrollmentKind;
  label: string;
  token_hash: string;
  created_by: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  uses: number;
  max_uses: number;
}

export const toToken = (r: TokenRow): EnrollmentToken => ({
  id: r.id,
  taskId: r.task_id,
  kind: r.kind,
  label: r.label,
  tokenHash: r.token_hash,
  createdBy: r.created_by,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
  uses: r.uses,
  maxUses: r.max_uses,
});

/** An `enrollments` row, alike in SQLite and PostgreSQL. */
export interface EnrollmentRow {
  task_id: number;
  identity_key: string;
  kind: EnrollmentKind;
  token_id: number | null;
  created_at: string;
  revoked_at: string | null;
}

export const toEnrollment = (r: EnrollmentRow): Enrollment => ({
  taskId: r.task_id,
  identityKey: r.identity_key,
  kind: r.kind,
  tokenId: r.token_id,
  createdAt: r.created_at,
  revokedAt: r.revoked_at,
});
