import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ClientRegistry } from '../../server/gateway/clients.ts';
import { AsyncRunner } from '../../server/rounds/async-runner.ts';
import { FileCheckpointStore } from '../../server/rounds/checkpoint-store.ts';
import { Checkpoints } from '../../server/rounds/checkpoints.ts';
import { Coordinator } from '../../server/rounds/coordinator.ts';
import type { CoordinatorOptions, RoundEvents } from '../../server/rounds/runner.ts';
import { Scheduler } from '../../server/rounds/scheduler.ts';
import { SyncRunner } from '../../server/rounds/sync-runner.ts';
import { initServerBackend } from '../../server/rounds/tf-backend.ts';
import { openDatabase } from '../../server/store/database.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import { TributaryError, type ErrorCode } from '../../shared/errors.ts';
import type { TaskStatusEvent } from '../../shared/protocol/events.ts';
import { withTaskDefaults, type TaskSpecInput } from '../../shared/protocol/task.ts';

/**
 * The coordinator over a real store, checkpoints, registry and scheduler, with no clients:
 * a started task's runner waits for clients and runs no round, so what is tested is only
 * the coordinator's bookkeeping of starts, pauses and stops.
 */

const testSet = { x: new Float32Array(784 * 2), y: new Int32Array([0, 1]), n: 2, features: 784 };

async function expectRejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const error: unknown = await promise.then(
    () => expect.fail(`expected ${code}`),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TributaryError);
  expect((error as TributaryError).code).toBe(code);
}

describe('Coordinator', () => {
  let dir: string;
  let store: SqliteStore;
  let checkpoints: Checkpoints;
  let files: FileCheckpointStore;
  let statuses: TaskStatusEvent[];
  /** Round events: none may happen without clients. */
  let unexpected: string[];
  let options: CoordinatorOptions;
  const coordinators: Coordinator[] = [];

  beforeAll(initServerBackend);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tributary-coordinator-'));
    store = new SqliteStore(openDatabase(join(dir, 'tributary.db')));
    files = new FileCheckpointStore(join(dir, 'checkpoints'));
    checkpoints = new Checkpoints(files);
    statuses = [];
    unexpected = [];
    const events: RoundEvents = {
      roundStarted: (event) => unexpected.push(`round ${event.round} started`),
      uploadProgress() {},
      roundAborted: (event) => unexpected.push(`round ${event.round} aborted`),
      roundComplete: (record) => unexpected.push(`round ${record.round} completed`),
      taskStatus: (event) => statuses.push(event),
    };
    const clients = new ClientRegistry();
    options = {
      store,
      checkpoints,
      clients,
      events,
      testSet: async () => testSet,
      chunkBytes: 64 * 1024,
      signingKey: new Uint8Array(64),
      unmask: () => Promise.reject(new Error('no secure rounds here')),
      scheduler: new Scheduler(clients),
      log: pino({ level: 'silent' }),
    };
  });

  afterEach(async () => {
    for (const c of coordinators.splice(0)) await c.stopAll();
    expect(unexpected).toEqual([]);
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function coordinator(): Coordinator {
    const c = new Coordinator(options);
    coordinators.push(c);
    return c;
  }

  const task = async (spec: TaskSpecInput = {}) => (await store.createTask(withTaskDefaults({ name: 'coordinated', rounds: 3, ...spec }))).id;

  it('resolves start only once checkpoint 0 is on disk, with the task running', async () => {
    const c = coordinator();
    const id = await task();
    const folder = files.folder(id, 0);
    expect(existsSync(folder)).toBe(false);
    const seen = await c.start(id).then((record) => ({ record, onDisk: existsSync(join(folder, 'model.json')) && existsSync(join(folder, 'weights.bin')) }));
    expect(seen.onDisk).toBe(true);
    expect(seen.record).toMatchObject({ id, status: 'running', completedRounds: 0 });
    expect((await store.getTask(id))?.status).toBe('running');
    expect(c.runner(id)).toBeDefined();
    expect(statuses).toEqual([{ taskId: id, status: 'running' }]);
  });

  it('answers the start of a running task with TASK_ALREADY_RUNNING', async () => {
    const c = coordinator();
    const id = await task();
    await c.start(id);
    const runner = c.runner(id);
    await expectRejectsWith(c.start(id), 'TASK_ALREADY_RUNNING');
    expect(c.runner(id)).toBe(runner);
  });

  it('answers the second of two concurrent starts with TASK_ALREADY_RUNNING, while the first still opens the model', async () => {
    const c = coordinator();
    const id = await task();
    const [first, second] = await Promise.allSettled([c.start(id), c.start(id)]);
    expect(first).toMatchObject({ status: 'fulfilled', value: { id, status: 'running' } });
    expect(second.status).toBe('rejected');
    expect((second as PromiseRejectedResult).reason).toMatchObject({ code: 'TASK_ALREADY_RUNNING' });
    expect(statuses).toEqual([{ taskId: id, status: 'running' }]);
  });

  it('gives a sync task a sync runner and an async task an async one', async () => {
    const c = coordinator();
    const sync = await task();
    const async = await task({ mode: 'async' });
    await c.start(sync);
    await c.start(async);
    expect(c.runner(sync)).toBeInstanceOf(SyncRunner);
    expect(c.runner(async)).toBeInstanceOf(AsyncRunner);
  });

  it('answers the start of an unknown task with TASK_NOT_FOUND', async () => {
    await expectRejectsWith(coordinator().start(999), 'TASK_NOT_FOUND');
  });

  it('answers the stop or pause of a task that is not running with TASK_NOT_RUNNING', async () => {
    const c = coordinator();
    const id = await task();
    await expectRejectsWith(c.stop(id), 'TASK_NOT_RUNNING');
    await expectRejectsWith(c.pause(id), 'TASK_NOT_RUNNING');
    expect((await store.getTask(id))?.status).toBe('created');
  });

  it('pauses a running task, and start resumes it', async () => {
    const c = coordinator();
    const id = await task();
    await c.start(id);
    expect(await c.pause(id)).toMatchObject({ id, status: 'paused' });
    expect(c.runner(id)).toBeUndefined();
    await expectRejectsWith(c.pause(id), 'TASK_NOT_RUNNING');
    expect(await c.start(id)).toMatchObject({ id, status: 'running' });
    expect(c.runner(id)).toBeDefined();
    expect(statuses.map((s) => s.status)).toEqual(['running', 'paused', 'running']);
  });

  it('stops a running task for good: a later start is TASK_FINISHED', async () => {
    const c = coordinator();
    const id = await task();
    await c.start(id);
    expect(await c.stop(id)).toMatchObject({ id, status: 'stopped' });
    expect(c.runner(id)).toBeUndefined();
    await expectRejectsWith(c.start(id), 'TASK_FINISHED');
    await expectRejectsWith(c.stop(id), 'TASK_NOT_RUNNING');
    expect(statuses.map((s) => s.status)).toEqual(['running', 'stopped']);
  });

  it('stops a paused task for good', async () => {
    const c = coordinator();
    const id = await task();
    await c.start(id);
    await c.pause(id);
    expect(await c.stop(id)).toMatchObject({ status: 'stopped' });
    await expectRejectsWith(c.start(id), 'TASK_FINISHED');
  });

  it('answers the start of a task that has completed all its rounds with TASK_FINISHED', async () => {
    const c = coordinator();
    const id = await task({ rounds: 1 });
    await store.completeRound({
      taskId: id, round: 1, participants: 1, dropped: 0, late: 0, rejected: 0, samples: 1, staleness: 0,
      accuracy: 0.5, loss: 1, metrics: { accuracy: 0.5, loss: 1 }, federated: null, uploadBytes: 1, uploadBytesPerParam: 1, durationMs: 1, finishedAt: new Date(0).toISOString(),
      rule: 'mean → fedavg', discarded: [], epsilon: null, clipNorm: null,
    });
    await expectRejectsWith(c.start(id), 'TASK_FINISHED');
    expect(statuses).toEqual([]);
  });

  it('leaves running tasks `running` in the store on stopAll, so that a restarted server resumes them', async () => {
    const c = coordinator();
    const a = await task();
    const b = await task();
    const paused = await task();
    await c.start(a);
    await c.start(b);
    await c.start(paused);
    await c.pause(paused);
    await c.stopAll();
    expect(c.runner(a)).toBeUndefined();
    expect(c.runner(b)).toBeUndefined();
    expect((await store.listTasks()).map((t) => [t.id, t.status])).toEqual([[a, 'running'], [b, 'running'], [paused, 'paused']]);

    const restarted = coordinator();
    expect(await restarted.start(a)).toMatchObject({ status: 'running' });
    expect(restarted.runner(a)).toBeDefined();
  });

  // A shutdown (or a stop) during a start waits for the start's runner, then stops it.
  it('leaves no runner going when stopAll comes while a start is still opening the model', async () => {
    let entered!: () => void;
    const opening = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    options.testSet = async () => {
      entered();
      await gate;
      return testSet;
    };
    const c = coordinator();
    const id = await task();
    const starting = c.start(id);
    await opening; // start is past its checks, loading the test set
    const stopping = c.stopAll();
    release();
    await Promise.allSettled([starting, stopping]);
    expect(c.runner(id)).toBeUndefined();
  });

  it('stops a task whose start is still opening the model, instead of answering TASK_NOT_RUNNING and letting it run', async () => {
    let entered!: () => void;
    const opening = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    options.testSet = async () => {
      entered();
      await gate;
      return testSet;
    };
    const c = coordinator();
    const id = await task();
    const starting = c.start(id);
    await opening;
    const stopping = c.stop(id);
    release();
    await starting;
    expect(await stopping).toMatchObject({ status: 'stopped' });
    expect(c.runner(id)).toBeUndefined();
  });
});
