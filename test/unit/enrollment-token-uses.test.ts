import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Enrollments } from '../../server/auth/enrollment.ts';
import { openDatabase } from '../../server/store/database.ts';
import { SqliteAudit } from '../../server/store/sqlite-audit.ts';
import { SqliteEnrollments } from '../../server/store/sqlite-enrollments.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import { cryptoReady } from '../../shared/crypto/sodium.ts';
import { withTaskDefaults } from '../../shared/protocol/task.ts';

/** A token's maxUses, as Enrollments enforces it over a real SQLite database. */
describe('enrollment token use limits', () => {
  let dir: string;
  let db: ReturnType<typeof openDatabase>;
  let enrollments: Enrollments;
  let tokens: SqliteEnrollments;
  let taskId: number;
  const by = { actor: 'ada', ip: '' };
  const key = (i: number) => new Uint8Array(32).fill(i);

  beforeAll(cryptoReady);
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tributary-enroll-'));
    db = openDatabase(join(dir, 'tributary.db'));
    const store = new SqliteStore(db);
    tokens = new SqliteEnrollments(db);
    enrollments = new Enrollments(tokens, store, new SqliteAudit(db));
    taskId = (await store.createTask(withTaskDefaults({ name: 'limited' }))).id;
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a second device on a single-use token with ENROLLMENT_TOKEN_INVALID', async () => {
    const { token, record } = await enrollments.createToken(taskId, { kind: 'client', label: 'one device', maxUses: 1, expiresInHours: 0 }, by);
    await enrollments.enrollWithToken(token, key(1), '');
    await expect(enrollments.enrollWithToken(token, key(2), '')).rejects.toMatchObject({ code: 'ENROLLMENT_TOKEN_INVALID' });
    expect((await tokens.tokenById(record.id))?.uses).toBe(1);
  });

  // The use limit is checked and counted in one atomic step of the store.
  it('refuses all but one of several concurrent enrollments with a single-use token', async () => {
    const { token, record } = await enrollments.createToken(taskId, { kind: 'client', label: 'one device', maxUses: 1, expiresInHours: 0 }, by);
    const outcomes = await Promise.allSettled([1, 2, 3].map((i) => enrollments.enrollWithToken(token, key(i), '')));
    expect(outcomes.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected', 'rejected']);
    expect((await tokens.tokenById(record.id))?.uses).toBe(1);
    expect(await tokens.listEnrollments(taskId)).toHaveLength(1);
  });
});
