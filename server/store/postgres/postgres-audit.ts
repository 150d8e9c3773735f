import type { AuditEntry, AuditLog } from '../../auth/model.ts';
import { toAuditEntry, type AuditRow } from '../rows/audit.ts';
import type { PostgresDatabase } from './database.ts';

/** The audit trail in PostgreSQL: ids from an identity column, so newer entries have larger ones. */
export class PostgresAudit implements AuditLog {
  constructor(private readonly db: PostgresDatabase) {}

  async record(e: Omit<AuditEntry, 'id' | 'at'>): Promise<void> {
    await this.db.changes('INSERT INTO audit (at, actor, action, target, detail, ip) VALUES ($1, $2, $3, $4, $5, $6)', [
      new Date().toISOString(), e.actor, e.action, e.target, JSON.stringify(e.detail), e.ip,
    ]);
  }

  async list({ limit, beforeId }: { limit: number; beforeId?: number }): Promise<AuditEntry[]> {
    const rows = await (beforeId === undefined
      ? this.db.rows<AuditRow>('SELECT * FROM audit ORDER BY id DESC LIMIT $1', [limit])
      : this.db.rows<AuditRow>('SELECT * FROM audit WHERE id < $1 ORDER BY id DESC LIMIT $2', [beforeId, limit]));
    return rows.map(toAuditEntry);
  }
}
