import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../server/store/database.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import { TASK_DEFAULTS } from '../../shared/protocol/task.ts';

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
});
