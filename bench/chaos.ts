import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { demoTaskSpec } from '../cli/demo.ts';
import { api, edgeClientArgs, enrollmentToken, freePort, operatorToken, spawnTributary, waitForHealth, tokenEnv } from '../cli/processes.ts';
import { createRng, deriveSeed, shuffleInPlace } from '../shared/random.ts';
import type { TaskRecord } from '../shared/protocol/task.ts';
import { FileCheckpointStore } from '../server/rounds/checkpoint-store.ts';
import { accuracyRow, chaosDemoOptions, checkpointedRounds, clientEventCounts, contiguous, verdict } from './chaos-checks.ts';
import { accuracyOf, runDemoJson } from './demo-run.ts';
import type { BenchOptions } from './options.ts';
import { table } from './report.ts';

/**
 * Crash-safety under fire: the demo's task, trained while the server is SIGKILLed at
 * random moments and restarted on the same state folder, and 30 % of the clients drop
 * their connection at random. Then the record is checked: every round present once, in
 * order, each with its checkpoint; the final accuracy against an uninterrupted run with
 * the same seed.
 */

const KILLS = 6;
const FLAKY_FRACTION = 0.3;
/** Mean time between a flaky client's connection drops. */
const DISCONNECT_EVERY_MS = 20_000;
const SEED = 1;

interface Kill {
  atSeconds: number;
  completedRounds: number;
  downMs: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (line: string) => process.stderr.write(`${line}\n`);

async function chaosRun(options: BenchOptions) {
  const demo = chaosDemoOptions(options, SEED);
  const dataDir = await mkdtemp(join(tmpdir(), 'tributary-chaos-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const rng = createRng(deriveSeed('chaos', SEED));
  const started = Date.now();
  let generation = 0;
  const startServer = async (): Promise<ChildProcess> => {
    const server = spawnTributary(['serve', '--port', String(port), '--data-dir', dataDir, '--log-level', 'warn'], join(dataDir, `server-${generation++}.log`));
    await waitForHealth(url, server);
    return server;
  };
  const operator = operatorToken(dataDir);
  let server = await startServer();
  const children: ChildProcess[] = [];
  try {
    const task = await api<TaskRecord>(`${url}/api/tasks`, 'POST', demoTaskSpec(demo), operator);
    const token = await enrollmentToken(url, task.id, operator, 'chaos clients');
    const flaky = new Set(shuffleInPlace(Array.from({ length: demo.clients }, (_, i) => i), rng).slice(0, Math.round(FLAKY_FRACTION * demo.clients)));
    for (let i = 0; i < demo.clients; i++) {
      const chaos = flaky.has(i) ? ['--disconnect-every', String(DISCONNECT_EVERY_MS)] : [];
      const args = edgeClientArgs(url, task.id, i, demo.datasetDir, dataDir, ['--backend', demo.backend, '--seed', String(demo.seed * 1000 + i), '--json', ...chaos]);
      children.push(spawnTributary(args, join(dataDir, `client-${i}.log`), tokenEnv(token)));
    }
    await api(`${url}/api/tasks/${task.id}/start`, 'POST', undefined, operator);
    log(`chaos run: ${demo.clients} clients (${[...flaky].join(', ')} flaky), state in ${dataDir}`);

    const progress = async () => (await api<TaskRecord>(`${url}/api/tasks/${task.id}`, 'GET', undefined, operator)).completedRounds;
    // Kill moments spread over the run: a random wait, then SIGKILL wherever the server is.
    const kills: Kill[] = [];
    const expectedRoundMs = 14_000;
    while (kills.length < KILLS && (await progress()) < demo.rounds) {
      await sleep(3_000 + rng.next() * (expectedRoundMs * demo.rounds) / (KILLS + 1));
      const completedRounds = await progress().catch(() => -1);
      if (completedRounds >= demo.rounds) break;
      server.kill('SIGKILL');
      await new Promise((resolve) => server.once('exit', resolve));
      const downStarted = Date.now();
      await sleep(500 + rng.next() * 2_000);
      server = await startServer();
      kills.push({ atSeconds: (downStarted - started) / 1000, completedRounds, downMs: Date.now() - downStarted });
      log(`  SIGKILL #${kills.length} at ${kills.at(-1)!.atSeconds.toFixed(0)} s after ${completedRounds} completed rounds; back in ${kills.at(-1)!.downMs} ms`);
    }
    while ((await progress()) < demo.rounds) await sleep(1_000);
    const wallMs = Date.now() - started;
    server.kill('SIGTERM');
    await new Promise((resolve) => server.once('exit', resolve));

    // What survived, read straight from the state folder.
    const db = new Database(join(dataDir, 'tributary.db'), { readonly: true });
    const rounds = db.prepare('SELECT round, accuracy FROM rounds WHERE task_id = ? ORDER BY round').all(task.id) as Array<{ round: number; accuracy: number }>;
    db.close();
    const count = clientEventCounts(Array.from({ length: demo.clients }, (_, i) => join(dataDir, `client-${i}.log`)));
    return {
      kills, rounds, contiguous: contiguous(rounds, demo.rounds), checkpointed: await checkpointedRounds(new FileCheckpointStore(join(dataDir, 'checkpoints')), task.id, rounds), wallMs, dataDir, flaky: flaky.size,
      disconnects: count('disconnected'), resumed: count('resumed'), abandoned: count('round-abandoned'),
      accuracy: rounds.at(-1)?.accuracy ?? 0,
    };
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    if (server.exitCode === null) server.kill('SIGKILL');
  }
}

export async function run(options: BenchOptions): Promise<void> {
  log(`uninterrupted run (${options.clients} clients, ${options.rounds} rounds, seed ${SEED})…`);
  const baseline = await runDemoJson('uninterrupted', ['--clients', String(options.clients), '--partition', 'dirichlet:0.5', '--seed', String(SEED)], options.rounds);
  log('chaos run…');
  const chaos = await chaosRun(options);

  const kills = table(['#', 'at s', 'completed rounds when killed', 'down ms'], chaos.kills.map((k, i) => [i + 1, k.atSeconds.toFixed(0), k.completedRounds, k.downMs]));
  const baselineAccuracy = accuracyOf(baseline.done);
  const summary = table(['check', 'target', 'measured', 'verdict'], [
    ['server SIGKILLs', `≥ 5`, chaos.kills.length, verdict(chaos.kills.length >= 5)],
    ['rounds completed', `${options.rounds}`, chaos.rounds.length, verdict(chaos.rounds.length === options.rounds)],
    ['round ids contiguous in SQLite', '1..N, each once', chaos.contiguous ? 'yes' : 'no', verdict(chaos.contiguous)],
    ['rounds with their checkpoint', `${options.rounds}`, chaos.checkpointed, verdict(chaos.checkpointed === options.rounds)],
    accuracyRow('final accuracy, chaos vs uninterrupted', chaos.accuracy, baselineAccuracy),
  ]);
  const perRound = table(['round', 'uninterrupted acc %', 'chaos acc %'], baseline.rounds.map((r, i) => [r.round, (accuracyOf(r) * 100).toFixed(2), chaos.rounds[i] ? (chaos.rounds[i]!.accuracy * 100).toFixed(2) : '—']));
  const report = [
    `Chaos: ${options.clients} clients, ${options.rounds} rounds, Fashion-MNIST Dirichlet(0.5), seed ${SEED}`,
    '',
    `Server kills (SIGKILL, restart on the same --data-dir and port)\n${kills}`,
    '',
    `Clients: ${chaos.flaky} of ${options.clients} drop their connection at random (mean every ${DISCONNECT_EVERY_MS / 1000} s): ` +
      `${chaos.disconnects} disconnects seen by clients (server kills included), ${chaos.resumed} sessions resumed, ${chaos.abandoned} round attempts abandoned.`,
    `Wall time: chaos ${(chaos.wallMs / 1000).toFixed(0)} s, uninterrupted ${(baseline.done.wallMs / 1000).toFixed(0)} s. State folder: ${chaos.dataDir}`,
    '',
    summary,
    '',
    perRound,
  ].join('\n');
  console.log(`\n${report}`);
  await mkdir(options.out, { recursive: true });
  await writeFile(join(options.out, 'chaos.txt'), `${report}\n`);
}
