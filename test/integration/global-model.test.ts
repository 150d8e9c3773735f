import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileCheckpointStore } from '../../server/rounds/checkpoint-store.ts';
import { Checkpoints } from '../../server/rounds/checkpoints.ts';
import type { RoundEvents } from '../../server/rounds/runner.ts';
import { GlobalModel, type Contribution } from '../../server/rounds/global-model.ts';
import { openDatabase } from '../../server/store/database.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import { initServerBackend } from '../../server/rounds/tf-backend.ts';
import type { Weights } from '../../shared/ml/aggregate.ts';
import { withTaskDefaults } from '../../shared/protocol/task.ts';

const mkdirp = (dir: string) => (mkdirSync(dir, { recursive: true }), dir);
const quiet: RoundEvents = { roundStarted() {}, uploadProgress() {}, roundAborted() {}, roundComplete() {}, taskStatus() {} };
const testSet = { x: new Float32Array(784 * 4), y: new Int32Array([0, 1, 2, 3]), n: 4, features: 784 };

/** A made-up mean update: small, different in each round. */
function update(lengths: number[], round: number, clips?: number[]): Contribution {
  const mean: Weights = lengths.map((n, t) => Float32Array.from({ length: n }, (_, i) => Math.sin(i + 7 * t + 13 * round) * 1e-3));
  return { input: { mean }, ...(clips ? { clips } : {}), participants: 1, dropped: 0, late: 0, rejected: 0, samples: 10, uploadBytes: 1, staleness: 0, aggregationMs: 0, startedAt: Date.now() };
}

describe('the global model across a server restart', () => {
  const root = mkdtempSync(join(tmpdir(), 'tributary-global-'));
  beforeAll(initServerBackend);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  /** A server's state folder with one FedAdam task. */
  async function server(name: string) {
    const dir = join(root, name);
    const store = new SqliteStore(openDatabase(join(mkdirp(dir), 'tributary.db')));
    const options = { store, checkpoints: new Checkpoints(new FileCheckpointStore(join(dir, 'checkpoints'))), events: quiet, testSet: async () => testSet, log: { info() {} } };
    const task = await store.createTask(withTaskDefaults({ name, strategy: 'fedadam', rounds: 3 }));
    return { dir, store, options, reopen: async () => GlobalModel.open((await store.getTask(task.id))!, options) };
  }

  it('picks up from its last checkpoint with the optimizer state, stepping on exactly as if never stopped', async () => {
    const steady = await server('steady');
    const a = await steady.reopen();
    await a.advance(update(a.lengths, 1, a.clips.map((c) => c * 3))); // as a secure round adapts them
    await a.advance(update(a.lengths, 2));

    const crashed = await server('crashed');
    const b1 = await crashed.reopen();
    await b1.advance(update(b1.lengths, 1, b1.clips.map((c) => c * 3)));
    const b2 = await crashed.reopen(); // a new process, from what round 1 left on disk
    expect(b2.version).toBe(1);
    expect(b2.clips).toEqual(b1.clips);
    expect(b2.clips).toEqual(a.clips);
    await b2.advance(update(b2.lengths, 2));
    expect(b2.weights).toEqual(a.weights);
    expect((await crashed.store.listRounds(1)).map((r) => r.round)).toEqual([1, 2]);

    // The control: without FedAdam's moments the same round comes out different.
    const forgetful = await server('forgetful');
    const c1 = await forgetful.reopen();
    await c1.advance(update(c1.lengths, 1));
    rmSync(join(forgetful.dir, 'checkpoints', 'task-1', 'round-1', 'server-state.json'));
    const c2 = await forgetful.reopen();
    await c2.advance(update(c2.lengths, 2));
    expect(c2.weights).not.toEqual(a.weights);
    for (const s of [steady, crashed, forgetful]) await s.store.close();
  });
});
