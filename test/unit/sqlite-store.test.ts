import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../server/store/database.ts';
import { SqliteAccounts } from '../../server/store/sqlite-accounts.ts';
import { SqliteAudit } from '../../server/store/sqlite-audit.ts';
import { SqliteEnrollments } from '../../server/store/sqlite-enrollments.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import { TASK_DEFAULTS } from '../../shared/protocol/task.ts';
import { describeAccountStoreConformance } from '../support/conformance/account-store.ts';
import { describeAuditLogConformance } from '../support/conformance/audit-log.ts';
import { describeEnrollmentStoreConformance } from '../support/conformance/enrollment-store.ts';
import { describeStoreConformance } from '../support/conformance/store.ts';

/** A fresh database file in its own temporary folder; `close` closes every handle opened on it and deletes the folder. */
function sqliteFile() {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-store-'));
  const file = join(dir, 'tributary.db');
  const handles: Database.Database[] = [];
  return {
    open: () => {
      const db = openDatabase(file);
      handles.push(db);
      return db;
    },
    close: async () => {
      for (const db of handles) if (db.open) db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describeStoreConformance('SqliteStore', async () => {
  const file = sqliteFile();
  const store = new SqliteStore(file.open());
  return {
    store,
    reopen: async () => {
      await store.close();
      return new SqliteStore(file.open());
    },
    close: file.close,
  };
});

describeAccountStoreConformance('SqliteAccounts', async () => {
  const file = sqliteFile();
  return { accounts: new SqliteAccounts(file.open()), close: file.close };
});

describeEnrollmentStoreConformance('SqliteEnrollments', async () => {
  const file = sqliteFile();
  const db = file.open();
  return { enrollments: new SqliteEnrollments(db), tasks: new SqliteStore(db), close: file.close };
});

describeAuditLogConformance('SqliteAudit', async () => {
  const file = sqliteFile();
  return { audit: new SqliteAudit(file.open()), close: file.close };
});

describe('SQLite store', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('reads a task stored by an older version, filling fields added since with their defaults', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tributary-store-'));
    dirs.push(dir);
    const file = join(dir, 'tributary.db');
    const store = new SqliteStore(openDatabase(file)); // creates the schema
    await store.close();
    const { secure: _s, threshold: _t, neighbours: _n, ...older } = { ...TASK_DEFAULTS, name: 'old' };
    const olderHyper = { localEpochs: 2, batchSize: 32, learningRate: 0.05, optimizer: 'sgd' };
    const db = new Database(file);
    db.prepare('INSERT INTO tasks (spec, status, created_at) VALUES (?, ?, ?)').run(JSON.stringify({ ...older, hyper: olderHyper }), 'stopped', new Date().toISOString());
    db.close();

    const reopened = new SqliteStore(openDatabase(file));
    const task = (await reopened.listTasks())[0]!;
    expect(task.spec).toEqual({ ...TASK_DEFAULTS, name: 'old', hyper: { ...olderHyper, proximalMu: 0 } });
    await reopened.close();
  });

  it('reads a task that named a model preset and no data schema as the same model on the default built-in data', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tributary-store-'));
    dirs.push(dir);
    const file = join(dir, 'tributary.db');
    await new SqliteStore(openDatabase(file)).close();
    const { data: _d, evaluation: _e, ...rest } = { ...TASK_DEFAULTS, name: 'preset era' };
    const db = new Database(file);
    for (const model of ['fmnist-mlp', 'fmnist-cnn']) db.prepare('INSERT INTO tasks (spec, status, created_at) VALUES (?, ?, ?)').run(JSON.stringify({ ...rest, model }), 'stopped', new Date().toISOString());
    db.close();

    const reopened = new SqliteStore(openDatabase(file));
    const [mlp, cnn] = await reopened.listTasks();
    expect(mlp!.spec).toEqual({ ...TASK_DEFAULTS, name: 'preset era', model: { kind: 'mlp', hidden: [200, 200] } });
    expect(cnn!.spec.model).toEqual({ kind: 'cnn', filters: [16, 32], dense: 64 });
    await reopened.close();
  });
});
