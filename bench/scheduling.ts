import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api, edgeClientArgs, enrollmentToken, freePort, operatorToken, spawnTributary, waitForHealth, tokenEnv } from '../cli/processes.ts';
import { SWIFTSHADER_ICD } from '../client/node/webgpu.ts';
import type { ClientView } from '../shared/protocol/events.ts';
import type { ParticipantRecord, RoundRecord, TaskRecord, TaskSpecInput } from '../shared/protocol/task.ts';
import { accuracyOf } from './demo-run.ts';
import type { BenchOptions } from './options.ts';
import { table } from './report.ts';

/**
 * A mixed federation, trained twice with the same seed: once with every participant
 * training its whole shard (uniform), once with work sized by measured speed (capability).
 * One GPU node holds the heavy shard; six edge clients hold light ones, two of them
 * throttled to a quarter of their speed. Two settings of the GPU node: WebGPU on
 * SwiftShader (software Vulkan: here the slowest device), and no adapter (its WASM
 * fall-back: here the fastest device, the role a real GPU node plays).
 *
 * Seven devices share this machine's cores. Run at full speed, the edge clients would
 * contend for them, so every device would be as slow as the cores are busy, whatever its
 * work: edge devices are modelled at a quarter of a core (a phone or a small board; they
 * idle the rest, as --throttle does), which keeps the federation within two cores.
 */

const EDGES = 6;
const THROTTLED = 2;
const ROUNDS = 10;
/** An edge device's speed as a fraction of one of this machine's cores; the throttled ones a quarter of that. */
const EDGE_SPEED = 0.25;
const THROTTLE = 0.25;
/** Relative shard sizes: the GPU node's heavy one first. */
const SIZES = [4, 1, 1, 1, 1, 1, 1];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (line: string) => process.stderr.write(`${line}\n`);

interface Scenario {
  name: string;
  /** The GPU node finds SwiftShader (WebGPU) or no adapter (WASM fall-back). */
  swiftshader: boolean;
}

const SCENARIOS: Scenario[] = [
  { name: 'GPU node on WebGPU/SwiftShader: the slowest device holds the heavy shard', swiftshader: true },
  { name: 'GPU node without an adapter (WASM fall-back): the fastest device holds the heavy shard', swiftshader: false },
];

interface Run {
  mode: 'uniform' | 'capability';
  rounds: RoundRecord[];
  last: ParticipantRecord[];
  clients: ClientView[];
  wallMs: number;
}

async function federation(mode: Run['mode'], rounds: number, scenario: Scenario): Promise<Run> {
  const dataDir = mkdtempSync(join(tmpdir(), `tributary-scheduling-${mode}-`));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const operator = operatorToken(dataDir);
  const children: ChildProcess[] = [];
  const server = spawnTributary(['serve', '--port', String(port), '--data-dir', dataDir, '--log-level', 'warn'], join(dataDir, 'server.log'));
  children.push(server);
  try {
    await waitForHealth(url, server);
    const spec: TaskSpecInput = {
      name: `scheduling ${mode}`,
      dataset: 'fashion-mnist',
      partition: { kind: 'sizes', sizes: SIZES },
      shards: SIZES.length,
      clientsPerRound: SIZES.length,
      rounds,
      trainLimit: 12_000,
      testLimit: 2_000,
      scheduling: mode,
      // No federated evaluation: it would hold part of every shard out of training, and add work to each round.
      evaluation: { every: 0 },
      seed: 1,
    };
    const task = await api<TaskRecord>(`${url}/api/tasks`, 'POST', spec, operator);
    const clientToken = await enrollmentToken(url, task.id, operator, 'edges');
    const gpuToken = await enrollmentToken(url, task.id, operator, 'gpu node', 'gpu');
    const runtime = join(dataDir, 'xdg');
    mkdirSync(runtime, { mode: 0o700 });
    // The GPU node joins first and gets the heavy shard (the server hands GPU nodes the largest free one).
    children.push(spawnTributary(
      ['gpu-node', '--server', url, '--task', String(task.id), '--seed', '1000',
        '--pin-file', join(dataDir, 'pins.json'), '--identity-file', join(dataDir, 'gpu-identity.json'), '--json'],
      join(dataDir, 'gpu-node.log'),
      { ...(scenario.swiftshader ? { ...process.env, VK_ICD_FILENAMES: SWIFTSHADER_ICD, XDG_RUNTIME_DIR: runtime } : withoutVulkanDriver(runtime)), TRIBUTARY_TOKEN: gpuToken },
    ));
    const clientsOf = () => api<ClientView[]>(`${url}/api/tasks/${task.id}/clients`, 'GET', undefined, operator);
    while (!(await clientsOf()).some((c) => c.kind === 'gpu' && c.samples > 0)) await sleep(500);
    for (let i = 0; i < EDGES; i++) {
      const throttle = ['--throttle', String(i < THROTTLED ? EDGE_SPEED * THROTTLE : EDGE_SPEED)];
      children.push(spawnTributary(edgeClientArgs(url, task.id, i + 1, [], dataDir, ['--seed', String(1001 + i), ...throttle]), join(dataDir, `edge-${i}.log`), tokenEnv(clientToken)));
    }
    while ((await clientsOf()).filter((c) => c.samples > 0).length < SIZES.length) await sleep(500);
    const clients = await clientsOf();
    log(`  ${mode}: ${clients.map((c) => `${c.kind}/${c.backend} shard ${c.shard} (${c.samples}) ${Math.round(c.throughput)}/s`).join(', ')}`);
    const started = Date.now();
    await api(`${url}/api/tasks/${task.id}/start`, 'POST', undefined, operator);
    let done: RoundRecord[] = [];
    while (done.length < rounds) {
      await sleep(1_000);
      const now = await api<RoundRecord[]>(`${url}/api/tasks/${task.id}/rounds`, 'GET', undefined, operator);
      if (now.length > done.length) log(`  ${mode} round ${now.at(-1)!.round}: ${(now.at(-1)!.durationMs / 1000).toFixed(1)} s, accuracy ${(accuracyOf(now.at(-1)!) * 100).toFixed(2)} %`);
      done = now;
    }
    const last = await api<ParticipantRecord[]>(`${url}/api/tasks/${task.id}/rounds/${rounds}/participants`, 'GET', undefined, operator);
    return { mode, rounds: done, last, clients, wallMs: Date.now() - started };
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** The environment without a Vulkan driver setting: Dawn finds no adapter and the node falls back to WASM. */
function withoutVulkanDriver(runtime: string): NodeJS.ProcessEnv {
  const { VK_ICD_FILENAMES: _icd, VK_DRIVER_FILES: _drivers, ...env } = process.env;
  return { ...env, XDG_RUNTIME_DIR: runtime };
}

/** Both schedules of one scenario, and what they show. */
async function compare(scenario: Scenario, rounds: number): Promise<{ text: string; ratio: number; accuracyGap: number }> {
  log(`${scenario.name}: uniform work (${rounds} rounds)…`);
  const uniform = await federation('uniform', rounds, scenario);
  log(`${scenario.name}: capability-aware work (${rounds} rounds)…`);
  const capability = await federation('capability', rounds, scenario);

  const roundSeconds = (r: Run) => mean(r.rounds.map((x) => x.durationMs / 1000));
  const ratio = roundSeconds(uniform) / roundSeconds(capability);
  const accuracy = (r: Run) => accuracyOf(r.rounds.at(-1)!);
  const summary = table(['scheduling', 'mean round s', 'slowest round s', `accuracy after ${rounds}`, 'samples trained / round', 'wall s'], [uniform, capability].map((r) => [
    r.mode,
    roundSeconds(r).toFixed(1),
    Math.max(...r.rounds.map((x) => x.durationMs / 1000)).toFixed(1),
    `${(accuracy(r) * 100).toFixed(2)} %`,
    Math.round(mean(r.rounds.map((x) => x.samples))).toLocaleString('en'),
    (r.wallMs / 1000).toFixed(0),
  ]));
  const perRound = table(['round', 'uniform s', 'uniform acc %', 'capability s', 'capability acc %'], uniform.rounds.map((u, i) => {
    const c = capability.rounds[i]!;
    return [u.round, (u.durationMs / 1000).toFixed(1), (accuracyOf(u) * 100).toFixed(2), (c.durationMs / 1000).toFixed(1), (accuracyOf(c) * 100).toFixed(2)];
  }));
  const work = (r: Run) => table(['client', 'kind', 'backend', 'samples/s (est.)', 'work', 'trained', 'time', 'outcome'], r.last.map((p) => [
    p.clientId.slice(0, 8), p.kind, p.backend, Math.round(p.speed), p.budget === null ? 'full shard' : `${p.budget} samples`, p.samples,
    p.elapsedMs === null ? '—' : `${(p.elapsedMs / 1000).toFixed(1)} s`, p.outcome,
  ]));
  const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const targets = table(['target', 'measured', 'verdict'], [
    ['round wall time ≥ 1.5× shorter', `${ratio.toFixed(2)}× (${roundSeconds(uniform).toFixed(1)} s → ${roundSeconds(capability).toFixed(1)} s)`, verdict(ratio >= 1.5)],
    [`accuracy after ${rounds} rounds: capability ≥ uniform`, `${(accuracy(capability) * 100).toFixed(2)} % vs ${(accuracy(uniform) * 100).toFixed(2)} %`, verdict(accuracy(capability) >= accuracy(uniform))],
  ]);
  const text = [
    `== ${scenario.name}`,
    '',
    summary,
    '',
    targets,
    '',
    perRound,
    '',
    `Last round, uniform:\n${work(uniform)}`,
    '',
    `Last round, capability-aware:\n${work(capability)}`,
  ].join('\n');
  return { text, ratio, accuracyGap: accuracy(capability) - accuracy(uniform) };
}

export async function run(options: BenchOptions): Promise<void> {
  const rounds = Math.min(options.rounds, ROUNDS);
  const parts: string[] = [];
  for (const scenario of SCENARIOS) parts.push((await compare(scenario, rounds)).text);
  const report = [
    `Scheduling: 1 GPU node (heavy shard, full speed) + ${EDGES} edge clients at ${EDGE_SPEED} of a core (${THROTTLED} of them throttled to ${THROTTLE} of that), Fashion-MNIST 12,000 images in shards of relative sizes ${SIZES.join(':')}, MLP, seed 1`,
    '',
    ...parts.flatMap((p) => [p, '']),
    'SwiftShader is software Vulkan: there the heavy-shard node is the slowest device, and not waiting for it costs',
    'distinct samples each round. A GPU node normally is the fastest device, as in the second setting.',
  ].join('\n');
  console.log(`\n${report}`);
  await mkdir(options.out, { recursive: true });
  await writeFile(join(options.out, 'scheduling.txt'), `${report}\n`);
}
