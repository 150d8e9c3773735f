import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SWIFTSHADER_ICD } from '../../client/node/webgpu.ts';
import { startHarness, type Harness } from '../support/harness.ts';

const bin = fileURLToPath(new URL('../../bin/tributary.js', import.meta.url));

interface ClientView {
  kind: string;
  backend: string;
  adapter?: string;
  throughput: number;
}

/** A `tributary gpu-node --json` process and the events it has printed so far. */
interface GpuNode {
  child: ChildProcess;
  events: Array<Record<string, unknown>>;
}

describe('GPU node', () => {
  let h: Harness;
  const nodes: GpuNode[] = [];

  /** Vulkan's driver lookup as given (undefined: none set), nothing inherited from the shell running the tests. */
  function spawnGpuNode(taskId: number, token: string, shard: number, icd: string | undefined): GpuNode {
    const { VK_ICD_FILENAMES: _icd, VK_DRIVER_FILES: _drivers, ...inherited } = process.env;
    // An owner-only runtime folder keeps the Vulkan loader from complaining on every start.
    const runtime = join(h.dataDir, 'xdg-runtime');
    mkdirSync(runtime, { recursive: true, mode: 0o700 });
    const args = ['gpu-node', '--server', h.url, '--task', String(taskId), '--shard', String(shard), '--seed', String(shard),
      '--token', token, '--json', '--pin-file', join(h.dataDir, 'known-servers.json'), '--identity-file', join(h.dataDir, `gpu-${nodes.length}-identity.json`)];
    const child = spawn(process.execPath, [bin, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...inherited, XDG_RUNTIME_DIR: runtime, ...(icd ? { VK_ICD_FILENAMES: icd } : {}) },
    });
    const node: GpuNode = { child, events: [] };
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('{')) node.events.push(JSON.parse(line) as Record<string, unknown>);
    });
    nodes.push(node);
    return node;
  }

  async function gpuToken(taskId: number): Promise<string> {
    return (await h.app.enrollments.createToken(taskId, { kind: 'gpu', label: 'gpu node', maxUses: 0, expiresInHours: 0 }, { actor: 'test', ip: '' })).token;
  }

  async function clientViews(taskId: number): Promise<ClientView[]> {
    return (await h.asAdmin({ url: `/api/tasks/${taskId}/clients` })).json() as ClientView[];
  }

  beforeAll(async () => {
    h = await startHarness();
  });
  afterEach(() => {
    for (const { child } of nodes.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  });
  afterAll(() => h.close());

  it('trains on WebGPU through SwiftShader beside two edge clients and reports its adapter', async () => {
    const task = await h.createTask({ name: 'gpu node', shards: 3, clientsPerRound: 3, rounds: 2, trainLimit: 3000, testLimit: 500 });
    await h.app.coordinator.start(task.id);
    const gpu = spawnGpuNode(task.id, await gpuToken(task.id), 0, SWIFTSHADER_ICD);
    h.spawnClient(task.id, 1);
    h.spawnClient(task.id, 2);

    // The server's view of the node once it reported ready (after its throughput probe).
    let seen: ClientView | undefined;
    await h.waitFor(async () => {
      seen = (await clientViews(task.id)).find((c) => c.kind === 'gpu' && c.backend !== '');
      return seen !== undefined;
    }, 60_000);
    expect(seen).toMatchObject({ kind: 'gpu', backend: 'webgpu', adapter: expect.stringMatching(/swiftshader/i) });
    expect(seen!.throughput).toBeGreaterThan(0);

    await h.waitForStatus(task.id, 'completed', 100_000);
    const rounds = await h.app.store.listRounds(task.id);
    expect(rounds.map((r) => [r.round, r.participants])).toEqual([[1, 3], [2, 3]]);
    expect(gpu.events.find((e) => e.event === 'joined')).toMatchObject({ backend: 'webgpu', adapter: expect.stringMatching(/swiftshader/i) });
    expect(gpu.events.filter((e) => e.event === 'uploaded').map((e) => e.round)).toEqual([1, 2]);
  });

  it('falls back to WASM with a warning when Dawn finds no WebGPU adapter', async () => {
    const task = await h.createTask({ name: 'gpu node without adapter', shards: 3, clientsPerRound: 3, rounds: 1, trainLimit: 3000, testLimit: 500 });
    await h.app.coordinator.start(task.id);
    const token = await gpuToken(task.id);
    // No driver named at all (Dawn turns down Mesa's lavapipe), and a driver file that does not exist.
    const unset = spawnGpuNode(task.id, token, 0, undefined);
    const missing = spawnGpuNode(task.id, token, 1, '/nonexistent/vk_icd.json');
    for (const node of [unset, missing]) {
      await h.waitFor(async () => node.events.some((e) => e.event === 'joined'), 60_000);
      expect(node.events.find((e) => e.event === 'joined')).toMatchObject({
        backend: 'wasm',
        warning: expect.stringMatching(new RegExp(`^no WebGPU adapter: set VK_ICD_FILENAMES=${SWIFTSHADER_ICD}.*; training on wasm$`)),
      });
      expect(node.events.find((e) => e.event === 'joined')!.adapter).toBeUndefined();
    }
    expect((await clientViews(task.id)).filter((c) => c.kind === 'gpu').map((c) => c.backend)).toEqual(['wasm', 'wasm']);
  });
});
