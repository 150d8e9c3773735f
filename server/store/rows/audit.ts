import type { AuditEntry } from '../../auth/model.ts';

/** An `audit` row, alike in SQLite and PostgreSQL: the detail is JSON text in both. */
export interface AuditRow {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  detail: string;
  ip: string;
}

export const toAuditEntry = (r: AuditRow): AuditEntry => ({ ...r, detail: JSON.parse(r.detail) as Record<string, unknown> });
