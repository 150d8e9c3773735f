import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EdgeClientOptions } from '../client/node/edge.ts';
import { demoTaskSpec, type DemoOptions } from '../cli/demo.ts';
import { stopChild } from '../cli/local-servers/child.ts';
import { api, enrollmentToken, tokenEnv } from '../cli/processes.ts';
import { openPostgresStores } from '../server/store/postgres/open.ts';
import type { RoundRecord, TaskRecord } from '../shared/protocol/task.ts';
import { createRng, deriveSeed, shuffleInPlace, type Rng } from '../shared/random.ts';
import { accuracyRow, chaosDemoOptions, checkpointedRounds, clientEventCounts, contiguous, verdict } from './chaos-checks.ts';
import { startBenchCluster, type BenchCluster } from './local-cluster.ts';
import type { BenchOptions } from './options.ts';
import { table } from './report.ts';

/**
 * Cluster mode under fire: the chaos bench's task on three server processes behind nginx
 * (one Redis, one PostgreSQL, one shared server folder) with real TF.js clients, while
 * server processes, the leader among them, are SIGKILLed at random moments and started
 * again, and Redis is restarted empty once. Then the record is checked: every round
 * recorded once, in order, with its checkpoint; no round seen recorded before a kill
 * missing after it; the final accuracy against the same cluster run undisturbed, with the
 * same seeds.
 */

const PROCESSES = 3;
const SEED = 1;
/** The disturbances, one at a time (so never every process down at once), in a seeded random order. */
const DISTURBANCES = { leader: 3, other: 3, redis: 1 } as const;
type Disturbance = keyof typeof DISTURBANCES;
/** A killed process, or Redis, stays down this long plus up to DOWN_SPREAD_MS more. */
const DOWN_MIN_MS = 500;
const DOWN_SPREAD_MS = 4_500;
/**
 * Clients per client process. 50 `tributary client` processes would be 50 Node runtimes
 * with TF.js each, on 2 cores; ten to a process keeps each client what `tributary client`
 * runs (see cluster-clients.ts) while five processes still spread the training over both
 * cores.
 */
const CLIENTS_PER_PROCESS = 10;
/** A safety net for a round whose participants hang, well above a round's normal time here. */
const ROUND_DEADLINE_MS = 90_000;
/** No new round for this long: the run is stuck, and is reported as failed. */
const STALL_MS = 240_000;
/** After its last round, how long the task may take to say it completed. */
const COMPLETION_MS = 30_000;

interface Event {
  kind: Disturbance;
  atSeconds: number;
  /** `server <i>` or `redis`. */
  target: string;
  /** Whether the process killed held the task's lease then (null for Redis). */
  wasLeader: boolean | null;
  completedRounds: number;
  downMs: number;
}

interface Run {
  label: string;
  dir: string;
  taskId: number;
  rounds: RoundRecord[];
  status: string;
  events: Event[];
  /** Rounds the REST API showed at some point that are not in the final record as they were. */
  lost: number[];
  checkpointed: number;
  wallMs: number;
  clients: { joined: number; resumed: number; disconnected: number; abandoned: number; lost: number };
  /** What the clients reported as errors, by message, most frequent first. */
  clientErrors: Array<[string, number]>;
  /** Why the run did not finish, if it did not. */
  failure?: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (line: string) => process.stderr.write(`${line}\n`);

/**
 * The task's rounds as the REST API lists them (through nginx), polled. Every round seen
 * is remembered with its finishing time, so a round recorded once and gone (or recorded
 * again) later shows up as lost.
 */
class RoundWatch {
  rounds: RoundRecord[] = [];
  readonly seen = new Map<number, string>();
  private changedAt = Date.now();

  constructor(private readonly url: string, private readonly operator: string, private readonly label: string) {}

  async poll(): Promise<void> {
    const rounds = await api<RoundRecord[]>(`${this.url}/rounds`, 'GET', undefined, this.operator).catch(() => undefined);
    if (!rounds) return; // nginx with no process up, say: the next poll tells
    for (const r of rounds) {
      if (this.seen.has(r.round)) continue;
      this.seen.set(r.round, r.finishedAt);
      this.changedAt = Date.now();
      log(`  ${this.label} round ${r.round}: ${((r.accuracy ?? Number.NaN) * 100).toFixed(2)} %, ${r.participants} participants, ${(r.durationMs / 1000).toFixed(1)} s`);
    }
    this.rounds = rounds;
  }

  /** Until `n` rounds are recorded; throws once no new round came for STALL_MS. */
  async waitFor(n: number): Promise<void> {
    for (;;) {
      await this.poll();
      if (this.rounds.length >= n) return;
      if (Date.now() - this.changedAt > STALL_MS) throw new Error(`stuck: no new round for ${STALL_MS / 1000} s after round ${this.rounds.length}`);
      await sleep(1_000);
    }
  }

  /** A round's mean time so far, for picking a moment inside the round in flight. */
  meanRoundMs(): number {
    return this.rounds.length ? this.rounds.reduce((n, r) => n + r.durationMs, 0) / this.rounds.length : 10_000;
  }

  lost(): number[] {
    return [...this.seen].filter(([round, at]) => this.rounds.filter((r) => r.round === round && r.finishedAt === at).length !== 1).map(([round]) => round);
  }
}

/** The clients, CLIENTS_PER_PROCESS to a process (cluster-clients.ts), all through nginx, so a dead server's clients reconnect to a live one. */
function startClients(url: string, dir: string, taskId: number, token: string, demo: DemoOptions): ChildProcess[] {
  const module = fileURLToPath(new URL('./cluster-clients.ts', import.meta.url));
  const hosts: ChildProcess[] = [];
  for (let first = 0; first < demo.clients; first += CLIENTS_PER_PROCESS) {
    const shards = Array.from({ length: Math.min(CLIENTS_PER_PROCESS, demo.clients - first) }, (_, k) => first + k);
    const clients: EdgeClientOptions[] = shards.map((shard) => ({
      server: url, taskId, shard, seed: demo.seed * 1000 + shard, backend: demo.backend, json: true,
      pinFile: join(dir, 'known-servers.json'), identityFile: join(dir, `client-${shard}-identity.json`),
    }));
    const out = openSync(join(dir, `clients-${hosts.length}.log`), 'w');
    const host = fork(module, [JSON.stringify(clients)], { execArgv: ['--import', 'tsx'], env: tokenEnv(token), stdio: ['ignore', out, out, 'ipc'] });
    closeSync(out);
    const index = hosts.length;
    host.once('exit', (code) => code && log(`  client process ${index} exited with code ${code} (see ${dir}/clients-${index}.log)`));
    hosts.push(host);
  }
  return hosts;
}

/** The server holding the lease, waited for a few seconds (there is none for up to the lease's ttl after its holder died). */
async function leader(cluster: BenchCluster, taskId: number) {
  for (let tries = 0; tries < 20; tries++) {
    const found = await cluster.leaderOf(taskId);
    if (found) return found;
    await sleep(500);
  }
  return undefined;
}

async function disturb(kind: Disturbance, cluster: BenchCluster, taskId: number, rng: Rng, completedRounds: number, started: number): Promise<Event> {
  const down = () => sleep(DOWN_MIN_MS + rng.next() * DOWN_SPREAD_MS);
  if (kind === 'redis') {
    const at = Date.now();
    await cluster.redis.stop();
    await down();
    await cluster.redis.start(); // empty: no lease, no board, no fence counter
    return { kind, atSeconds: (at - started) / 1000, target: 'redis', wasLeader: null, completedRounds, downMs: Date.now() - at };
  }
  const holder = await leader(cluster, taskId);
  const others = cluster.servers.filter((s) => s !== holder);
  const target = kind === 'leader' && holder ? holder : others[Math.floor(rng.next() * others.length)]!;
  const at = Date.now();
  await target.kill('SIGKILL');
  await down();
  await target.start();
  return { kind, atSeconds: (at - started) / 1000, target: `server ${target.index}`, wasLeader: target === holder, completedRounds, downMs: Date.now() - at };
}

/**
 * The disturbances spread over the run: the k-th of n once round ⌊(k + u)·(R − 2)/n⌋ + 1
 * is recorded (u uniform), then a random moment into the round in flight.
 */
async function disturbances(cluster: BenchCluster, taskId: number, watch: RoundWatch, rounds: number, events: Event[], started: number): Promise<void> {
  const rng = createRng(deriveSeed('cluster-chaos', SEED));
  const kinds = shuffleInPlace(Object.entries(DISTURBANCES).flatMap(([kind, n]) => Array<Disturbance>(n).fill(kind as Disturbance)), rng);
  for (const [k, kind] of kinds.entries()) {
    await watch.waitFor(1 + Math.floor(((k + rng.next()) * Math.max(1, rounds - 2)) / kinds.length));
    await sleep(rng.next() * watch.meanRoundMs());
    await watch.poll(); // what was recorded before the disturbance
    if (watch.rounds.length >= rounds) return;
    const event = await disturb(kind, cluster, taskId, rng, watch.rounds.length, started);
    events.push(event);
    log(`  ${kind === 'redis' ? 'Redis restarted' : `SIGKILL ${event.target}${event.wasLeader ? ' (the leader)' : ''}`} at ${event.atSeconds.toFixed(0)} s after ${event.completedRounds} rounds; back in ${event.downMs} ms`);
  }
}

/** The task's status once it says completed, or as it is after `waitMs`. */
async function completion(url: string, operator: string, waitMs = COMPLETION_MS): Promise<string> {
  const until = Date.now() + waitMs;
  for (;;) {
    const status = await api<TaskRecord>(url, 'GET', undefined, operator).then((t) => t.status, () => 'unknown');
    if (status === 'completed' || Date.now() > until) return status;
    await sleep(1_000);
  }
}

/** One run on a fresh cluster: the task, the clients, and (disturbed) the kills and the Redis restart. */
async function clusterRun(label: string, options: BenchOptions, disturbed: boolean): Promise<Run> {
  const demo = chaosDemoOptions(options, SEED);
  const dir = await mkdtemp(join(tmpdir(), `tributary-cluster-chaos-${label}-`));
  const started = Date.now();
  const cluster = await startBenchCluster({ processes: PROCESSES, dir, env: { MALLOC_ARENA_MAX: '2' } });
  let hosts: ChildProcess[] = [];
  try {
    const task = await api<TaskRecord>(`${cluster.url}/api/tasks`, 'POST', { ...demoTaskSpec(demo), roundDeadlineMs: ROUND_DEADLINE_MS }, cluster.operator);
    const taskUrl = `${cluster.url}/api/tasks/${task.id}`;
    const token = await enrollmentToken(cluster.url, task.id, cluster.operator, `${label} clients`);
    hosts = startClients(cluster.url, dir, task.id, token, demo);
    await api(`${taskUrl}/start`, 'POST', undefined, cluster.operator);
    log(`${label} run: ${PROCESSES} server processes behind ${cluster.url}, ${demo.clients} clients in ${hosts.length} processes, state in ${dir}`);

    const watch = new RoundWatch(taskUrl, cluster.operator, label);
    const events: Event[] = [];
    let failure: string | undefined;
    let status = 'unknown';
    try {
      if (disturbed) await disturbances(cluster, task.id, watch, demo.rounds, events, started);
      await watch.waitFor(demo.rounds);
      status = await completion(taskUrl, cluster.operator);
    } catch (error) {
      failure = (error as Error).message;
      log(`  ${label} run FAILED: ${failure}`);
      status = await completion(taskUrl, cluster.operator, 0);
    }
    await watch.poll();
    // Checkpoints live in the shared PostgreSQL database: read as a server process reads them.
    const stores = await openPostgresStores(cluster.database);
    const checkpointed = await checkpointedRounds(stores.checkpoints, task.id, watch.rounds).finally(() => stores.close());
    const logs = hosts.map((_, i) => join(dir, `clients-${i}.log`));
    const count = clientEventCounts(logs);
    return {
      label, dir, taskId: task.id, rounds: watch.rounds, status, events, lost: watch.lost(),
      checkpointed, wallMs: Date.now() - started,
      clients: { joined: count('joined'), resumed: count('resumed'), disconnected: count('disconnected'), abandoned: count('round-abandoned'), lost: count('client-lost') },
      clientErrors: clientErrors(logs),
      ...(failure ? { failure } : {}),
    };
  } finally {
    await Promise.all(hosts.map((h) => stopChild(h, 'SIGTERM', 5_000)));
    await cluster.stop();
  }
}

/** The clients' `error: …` lines (runEdgeClient prints each error event so), counted by message with ids and numbers blanked. */
function clientErrors(logFiles: readonly string[]): Array<[string, number]> {
  const counts = new Map<string, number>();
  for (const line of logFiles.flatMap((f) => readFileSync(f, 'utf8').split('\n'))) {
    if (!line.startsWith('error: ')) continue;
    const message = line.slice('error: '.length).replace(/\d+/g, 'N');
    counts.set(message, (counts.get(message) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]);
}

/** Rounds 1..R, each once, in the order they finished. */
const inOrder = (run: Run, rounds: number) => contiguous(run.rounds, rounds) && run.rounds.every((r, i) => i === 0 || run.rounds[i - 1]!.finishedAt <= r.finishedAt);
const finalAccuracy = (run: Run) => run.rounds.at(-1)?.accuracy ?? 0;

function report(options: BenchOptions, reference: Run, chaos: Run) {
  const { rounds } = options;
  const kills = chaos.events.filter((e) => e.kind !== 'redis');
  const summary: Array<[string, string, string | number, string]> = [
    ['server SIGKILLs (restarted)', '≥ 5', kills.length, verdict(kills.length >= 5)],
    ['… of them the leader', '≥ 2', kills.filter((e) => e.wasLeader).length, verdict(kills.filter((e) => e.wasLeader).length >= 2)],
    ['Redis restarts (empty)', '1', chaos.events.length - kills.length, verdict(chaos.events.length - kills.length === 1)],
    ['rounds recorded', `${rounds}`, chaos.rounds.length, verdict(chaos.rounds.length === rounds)],
    ['rounds 1..N each once, in order (REST)', 'yes', inOrder(chaos, rounds) ? 'yes' : 'no', verdict(inOrder(chaos, rounds))],
    ['task status', 'completed', chaos.status, verdict(chaos.status === 'completed')],
    ['completed rounds lost', '0', chaos.lost.length ? `${chaos.lost.length} (${chaos.lost.join(', ')})` : 0, verdict(chaos.lost.length === 0)],
    ['rounds with their checkpoint', `${rounds}`, chaos.checkpointed, verdict(chaos.checkpointed === rounds)],
    accuracyRow('final accuracy, disturbed vs undisturbed', finalAccuracy(chaos), finalAccuracy(reference)),
  ];
  const percent = (r: RoundRecord | undefined) => (r?.accuracy === null || r === undefined ? '—' : (r.accuracy * 100).toFixed(2));
  const text = [
    `Cluster chaos: ${PROCESSES} server processes, ${options.clients} clients, ${rounds} rounds, Fashion-MNIST MLP Dirichlet(0.5), seed ${SEED}`,
    '',
    `Disturbances (SIGKILL, then the process started again on its port; Redis stopped and started empty)\n${table(
      ['#', 'at s', 'what', 'leader', 'rounds recorded then', 'down ms'],
      chaos.events.map((e, i) => [i + 1, e.atSeconds.toFixed(0), e.target, e.wasLeader === null ? '—' : e.wasLeader ? 'yes' : 'no', e.completedRounds, e.downMs]),
    )}`,
    '',
    ...[reference, chaos].map((run) => `${run.label}: ${(run.wallMs / 1000).toFixed(0)} s; clients joined ${run.clients.joined} times, resumed ${run.clients.resumed}, ` +
      `saw ${run.clients.disconnected} disconnects, abandoned ${run.clients.abandoned} round attempts, ${run.clients.lost} clients failed; state in ${run.dir}${run.failure ? `\n  FAILED: ${run.failure}` : ''}` +
      run.clientErrors.map(([message, n]) => `\n  ${String(n).padStart(4)} × client error: ${message}`).join('')),
    '',
    table(['check', 'target', 'measured', 'verdict'], summary),
    '',
    table(['round', 'undisturbed acc %', 'participants', 's', 'disturbed acc %', 'participants', 'dropped', 'late', 'rejected', 's'], Array.from({ length: rounds }, (_, i) => {
      const [a, b] = [reference.rounds[i], chaos.rounds[i]];
      const seconds = (r: RoundRecord | undefined) => (r ? (r.durationMs / 1000).toFixed(1) : '—');
      return [i + 1, percent(a), a?.participants ?? '—', seconds(a), percent(b), b?.participants ?? '—', b?.dropped ?? '—', b?.late ?? '—', b?.rejected ?? '—', seconds(b)];
    })),
  ].join('\n');
  const json = { processes: PROCESSES, clients: options.clients, rounds, seed: SEED, summary: summary.map(([check, target, measured, v]) => ({ check, target, measured, met: v === 'met' })), reference, chaos };
  return { text, json };
}

export async function run(options: BenchOptions): Promise<void> {
  log(`undisturbed run (${PROCESSES} processes, ${options.clients} clients, ${options.rounds} rounds, seed ${SEED})…`);
  const reference = await clusterRun('undisturbed', options, false);
  if (reference.failure || reference.rounds.length !== options.rounds) throw new Error(`the undisturbed run did not complete (${reference.failure ?? `${reference.rounds.length} rounds`}): nothing to compare with; see ${reference.dir}`);
  log('disturbed run…');
  const chaos = await clusterRun('disturbed', options, true);
  const { text, json } = report(options, reference, chaos);
  console.log(`\n${text}`);
  await mkdir(options.out, { recursive: true });
  await writeFile(join(options.out, 'cluster-chaos.txt'), `${text}\n`);
  await writeFile(join(options.out, 'cluster-chaos.json'), `${JSON.stringify(json, null, 2)}\n`);
  if (chaos.failure) process.exitCode = 1;
}
