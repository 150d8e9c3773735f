import type Database from 'better-sqlite3';
import type { AuditEntry, AuditLog } from '../auth/model.ts';
import { toAuditEntry, type AuditRow } from './rows/audit.ts';

export class SqliteAudit implements AuditLog {
  constructor(private readonly db: Database.Database) {}

  async record(e: Omit<AuditEntry, 'id' | 'at'>): Promise<void> {
    this.db
      .prepare('INSERT INTO audit (at, actor, action, target, detail, ip) VALUES (?, ?, ?, ?, ?, ?)')
      .run(new Date().toISOString(), e.actor, e.action, e.target, JSON.stringify(e.detail), e.ip);
  }

  async list({ limit, beforeId }: { limit: number; beforeId?: number }): Promise<AuditEntry[]> {
    const rows = (beforeId === undefined
      ? this.db.prepare('SELECT * FROM audit ORDER BY id DESC LIMIT ?').all(limit)
      : this.db.prepare('SELECT * FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?').all(beforeId, limit)) as AuditRow[];
    return rows.map(toAuditEntry);
  }
}
