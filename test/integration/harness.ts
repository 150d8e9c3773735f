import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { edgeClientArgs } from '../../cli/processes.ts';
import { FederatedClient, type FederatedClientOptions } from '../../client/federated-client.ts';
import { loadDemoShard } from '../../client/node/fashion-mnist.ts';
import { activateNodeBackend } from '../../client/node/tf.ts';
import { buildApp, type App, type AppOptions } from '../../server/app.ts';
import { withTaskDefaults, type TaskRecord, type TaskSpecInput } from '../../shared/task.ts';

/** A real server on a loopback port, real client processes, and clean-up for both. */

export const FASHION_MNIST = '/usr/share/datasets/fashion-mnist';
const bin = fileURLToPath(new URL('../../bin/tributary.js', import.meta.url));

/** An in-process client (real socket on loopback) on a demo shard, for tests that act at exact moments. */
export function inProcessClient(url: string, taskId: number, shard: number, options: Partial<FederatedClientOptions> = {}): FederatedClient {
  return new FederatedClient({
    server: url,
    taskId,
    shard,
    kind: 'edge',
    seed: shard,
    activateBackend: (task) => activateNodeBackend(task.spec.model),
    data: ({ task }) => loadDemoShard(FASHION_MNIST, task.spec, shard),
    ...options,
  });
}

export interface Harness {
  app: App;
  url: string;
  createTask(spec: TaskSpecInput): Promise<TaskRecord>;
  spawnClient(taskId: number, shard: number, extra?: string[]): ChildProcess;
  waitForStatus(taskId: number, status: TaskRecord['status'], timeoutMs?: number): Promise<TaskRecord>;
  waitFor(condition: () => Promise<boolean>, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(options: Partial<AppOptions> = {}): Promise<Harness> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tributary-test-'));
  const app = await buildApp({ dataDir, fashionMnistDir: FASHION_MNIST, logger: pino({ level: 'silent' }), ...options });
  const url = await app.http.listen({ port: 0, host: '127.0.0.1' });
  const children: ChildProcess[] = [];
  const waitFor = async (condition: () => Promise<boolean>, timeoutMs = 100_000) => {
    const until = Date.now() + timeoutMs;
    while (!(await condition())) {
      if (Date.now() > until) throw new Error(`condition not met after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return {
    app,
    url,
    createTask: (spec) => app.store.createTask(withTaskDefaults(spec)),
    spawnClient(taskId, shard, extra = []) {
      const args = edgeClientArgs(url, taskId, shard, FASHION_MNIST, dataDir, ['--seed', String(shard), ...extra]);
      const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
      children.push(child);
      return child;
    },
    async waitForStatus(taskId, status, timeoutMs = 100_000) {
      let task = (await app.store.getTask(taskId))!;
      await waitFor(async () => (task = (await app.store.getTask(taskId))!).status === status, timeoutMs).catch(() => {
        throw new Error(`task ${taskId} is ${task.status}, not ${status}, after ${timeoutMs} ms`);
      });
      return task;
    },
    waitFor,
    async close() {
      for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
      await app.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
