import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { io, type Socket } from 'socket.io-client';
import { demoTaskSpec } from '../cli/demo.ts';
import { activateNodeBackend } from '../client/node/tf.ts';
import { buildModel, weightLengths } from '../shared/ml/models.ts';
import { decodeWeights } from '../shared/codec/model-wire.ts';
import { createStrategy } from '../server/strategies/index.ts';
import { readSecureSum } from '../server/secagg/masked-round.ts';
import { addInto, fromLevels, newRingVector } from '../shared/secagg/ring.ts';
import { startBenchCluster, type BenchCluster } from './local-cluster.ts';
import { api, freePort, operatorToken, spawnTributary, waitForHealth } from '../cli/processes.ts';
import type { AdminClientToServerEvents, AdminServerToClientEvents, RoundParticipantsEvent } from '../shared/protocol/events.ts';
import type { RoundRecord, TaskRecord, TaskSpecInput } from '../shared/protocol/task.ts';
import { argsAfterName, loadOptions, type LoadOptions } from './load/options.ts';
import { zeroCounters, type ClientSlot, type FromWorker, type SecureRoundSum, type ToWorker, type WorkerCounters } from './load/messages.ts';
import { scrapeEvery, type MetricsSample } from './load/server-metrics.ts';
import type { BenchOptions } from './options.ts';
import { table } from './report.ts';

/**
 * Thousands of lightweight simulated clients against a real `tributary serve`: real
 * sockets from many loopback addresses, the real enrollment and join, signed round configs
 * verified as the client verifies them, sealed 8-bit plain updates of the task's real size
 * uploaded in acknowledged chunks, and a share of the clients dropping and resuming every
 * round. No training. It measures the server: how fast clients join, round times, the time
 * from the last accepted upload to the published model, its event-loop lag and memory, and
 * the bytes on the wire.
 */

const EXPECTED_PARAMETERS = 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10;
const SAMPLES_PER_CLIENT = 500;
const SEED = 1;
/** Round 1's drop-outs are spread over this much of its start; later rounds' over the time the round before took. */
const CHURN_WINDOW_MS = 5_000;
/** Descriptors a process holds besides its sockets (SQLite, checkpoints, libraries, stdio, IPC). */
const FD_MARGIN = 512;
const PROGRESS_EVERY_MS = 5_000;

const log = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const seconds = (ms: number) => (ms / 1000).toFixed(1);
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);

/** The process's open-files limits (Linux); Node raises its soft limit to the hard one at start, and so does every Node child. */
function fileLimits(): { soft: number; hard: number } | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const [soft, hard] = line!.trim().split(/\s+/).slice(3, 5).map((v) => (v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v)));
    return { soft: soft!, hard: hard! };
  } catch {
    return undefined;
  }
}

/** Refuses a run this machine's descriptor limit cannot hold: the server holds one per client, each worker one per client it drives. */
function checkFileLimits(options: LoadOptions): string {
  const limits = fileLimits();
  const server = Math.ceil(options.clients / options.processes) + FD_MARGIN;
  const worker = Math.ceil(options.clients / options.workers) + FD_MARGIN;
  const needed = Math.max(server, worker);
  if (!limits) return `open files: limits unknown (not Linux); the server needs ≥ ${server}`;
  if (limits.hard < needed) {
    throw new Error(`open files: the server needs ≥ ${server} descriptors for ${options.clients} clients, but this shell's hard limit is ${limits.hard} ` +
      `(soft ${limits.soft}). Raise it (as root: \`ulimit -Hn ${needed}; ulimit -n ${needed}\`, or /etc/security/limits.conf, or docker --ulimit nofile=${needed}:${needed}), or run fewer --clients.`);
  }
  return `open files: soft ${limits.soft}, hard ${limits.hard} (Node raises soft to hard); needed: server ${server}, each worker ${worker}`;
}

function portRange(): string {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return `${high! - low! + 1} ephemeral ports per source address`;
  } catch {
    return 'ephemeral port range unknown';
  }
}

/** Loopback source address of an address group: 127.1.x.y, clear of 127.0.0.1 (the server's, and the bench's own requests). */
function groupAddress(group: number): string {
  return `127.1.${Math.floor(group / 250)}.${(group % 250) + 1}`;
}

/** The clients, by address group, dealt to the workers so each address's clients share one worker. */
function slotsByWorker(options: LoadOptions): ClientSlot[][] {
  const byWorker: ClientSlot[][] = Array.from({ length: options.workers }, () => []);
  for (let index = 0; index < options.clients; index++) {
    const group = Math.floor(index / options.perAddress);
    byWorker[group % options.workers]!.push({ index, address: groupAddress(group) });
  }
  return byWorker.filter((slots) => slots.length > 0);
}

/** The task: the demo's Fashion-MNIST MLP (hidden [200, 200], 199,210 parameters), 8-bit plain, open enrollment, k a round. */
function loadTaskSpec(options: LoadOptions): TaskSpecInput {
  const demo = demoTaskSpec({
    clients: Math.min(options.clients, 10_000), rounds: options.rounds, task: 'fashion-mnist', model: 'mlp', bits: 8,
    proximalMu: 0, seed: SEED, trainLimit: 0, testLimit: 0, evalEvery: 0, strategy: 'fedavg', mode: 'sync', bufferSize: 0,
    // Uniform: exactly k participants a round (capability scheduling over-selects by 30 %).
    scheduling: 'uniform', secure: options.secure,
  });
  return { ...demo, name: `load ${options.clients} clients, ${options.perRound} a round`, clientsPerRound: options.perRound, openEnrollment: true, roundDeadlineMs: options.deadlineMs };
}

/** The task's tensor lengths, from its model built as a device's trainer builds it (once, here; the simulated clients never load TF.js). */
async function modelLengths(task: TaskRecord): Promise<number[]> {
  await activateNodeBackend(task.spec.model);
  const model = await buildModel(task.spec.model, task.spec.data, task.spec.seed);
  const lengths = weightLengths(model);
  model.dispose();
  return lengths;
}

interface Worker {
  child: ChildProcess;
  counters: WorkerCounters | undefined;
  lastError: string | undefined;
  /** Its event-loop lag p99, one a report (about a second). */
  lag: LagSample[];
}

interface LagSample {
  at: number;
  p99Ms: number;
}

function startWorkers(slots: ClientSlot[][], onUploads: (uploads: Array<{ round: number; at: number }>) => void, onFail: (message: string) => void): Worker[] {
  const module = fileURLToPath(new URL('./load/worker.ts', import.meta.url));
  return slots.map(() => {
    // Advanced serialization: secure sums travel as typed arrays.
    const child = fork(module, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
    const worker: Worker = { child, counters: undefined, lastError: undefined, lag: [] };
    child.on('message', (message: FromWorker) => {
      if (message.type === 'report') {
        worker.counters = message.counters;
        worker.lastError = message.lastError;
        worker.lag.push({ at: Date.now(), p99Ms: message.lagP99Ms });
      } else if (message.type === 'uploaded') onUploads(message.uploads);
      else if (message.type === 'failed') onFail(message.message);
    });
    child.on('exit', (code) => {
      if (code !== 0 && code !== null) onFail(`a worker exited with code ${code}`);
    });
    return worker;
  });
}

const TALLIES = ['errorCodes', 'dropReasons'] as const;
type Tallies = (typeof TALLIES)[number];

function totals(workers: readonly Worker[]): WorkerCounters {
  const sum: WorkerCounters = zeroCounters();
  for (const w of workers) {
    const counts = Object.keys(sum).filter((key): key is Exclude<keyof WorkerCounters, Tallies> => !TALLIES.includes(key as Tallies));
    for (const key of counts) sum[key] += w.counters?.[key] ?? 0;
    for (const tally of TALLIES) {
      for (const [name, n] of Object.entries(w.counters?.[tally] ?? {})) sum[tally][name] = (sum[tally][name] ?? 0) + n;
    }
  }
  return sum;
}

/** What the bench saw of one round. */
interface RoundFigures {
  round: number;
  /** When the admin socket heard round:started and round:complete (ms since epoch). */
  startedAt: number;
  completedAt?: number;
  participants: number;
  record?: RoundRecord;
  detail?: RoundParticipantsEvent;
  /** Upload acks (complete) the simulated clients received for this round. */
  acks: number[];
  aborted: string[];
  /** Client-side wire counters (the workers' latest reports, up to 1 s old) at this round's start and the next one's. */
  wireAtStart: { in: number; out: number };
  wireAtEnd?: { in: number; out: number };
}

function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function samplesBetween(samples: readonly MetricsSample[], from: number, to: number): MetricsSample[] {
  return samples.filter((s) => s.at >= from && s.at <= to + 1_000);
}

/** The workers' lag p99s reported between `from` and a second past `to`. */
function lagBetween(lag: readonly LagSample[], from: number, to: number): number[] {
  return lag.filter((s) => s.at >= from && s.at <= to + 1_000).map((s) => s.p99Ms);
}

/** Per-round figures, derived: the server's numbers from its records, the bench's from its own clocks. */
function perRound(rounds: readonly RoundFigures[], samples: readonly MetricsSample[], simulatorLag: readonly LagSample[]) {
  return rounds.map((r) => {
    const during = samplesBetween(samples, r.startedAt, r.completedAt ?? Date.now());
    const simLag = lagBetween(simulatorLag, r.startedAt, r.completedAt ?? Date.now());
    const delivered = r.detail?.participants.filter((p) => p.outcome === 'delivered' && p.elapsedMs !== null) ?? [];
    const lastUploadMs = delivered.length ? Math.max(...delivered.map((p) => p.elapsedMs!)) : Number.NaN;
    const lastAck = r.acks.length ? Math.max(...r.acks) : Number.NaN;
    return {
      round: r.round,
      startedAt: r.startedAt,
      participants: r.record?.participants ?? 0,
      selected: r.participants,
      dropped: r.record?.dropped ?? 0,
      late: r.record?.late ?? 0,
      acks: r.acks.length,
      aborts: r.aborted.length,
      /** round:started to round:complete, as the admin socket heard them. */
      roundMs: r.completedAt !== undefined ? r.completedAt - r.startedAt : Number.NaN,
      /** The server's own: from selection to the record. */
      serverRoundMs: r.record?.durationMs ?? Number.NaN,
      /** Server clock: the last accepted upload's last chunk (round start + its elapsedMs) to the round's record (durationMs). */
      publishMs: r.record ? r.record.durationMs - lastUploadMs : Number.NaN,
      /** Bench clock: the last complete-ack a client got to round:complete on the admin socket. */
      publishSeenMs: r.completedAt !== undefined ? r.completedAt - lastAck : Number.NaN,
      lagP99Ms: during.length ? Math.max(...during.map((s) => s.lagP99Ms)) : Number.NaN,
      lagMaxMs: during.length ? Math.max(...during.map((s) => s.lagMaxMs)) : Number.NaN,
      simulatorLagP99Ms: simLag.length ? Math.max(...simLag) : Number.NaN,
      rssPeakBytes: during.length ? Math.max(...during.map((s) => s.rssBytes)) : Number.NaN,
      rssEndBytes: during.at(-1)?.rssBytes ?? Number.NaN,
      uploadBytes: r.record?.uploadBytes ?? 0,
      clientBytesOut: r.wireAtEnd ? r.wireAtEnd.out - r.wireAtStart.out : Number.NaN,
      clientBytesIn: r.wireAtEnd ? r.wireAtEnd.in - r.wireAtStart.in : Number.NaN,
    };
  });
}

/** A watcher on /admin, as the demo's: round starts, completions, participants, aborts, the task's end. */
function watch(url: string, token: string, taskId: number, handlers: {
  started(round: number, participants: number): void;
  participants(event: RoundParticipantsEvent): void;
  complete(record: RoundRecord): void;
  aborted(round: number, code: string): void;
  finished(status: string): void;
}): Socket<AdminServerToClientEvents, AdminClientToServerEvents> {
  const socket: Socket<AdminServerToClientEvents, AdminClientToServerEvents> = io(`${url}/admin`, { transports: ['websocket'], auth: { token } });
  socket.on('round:started', (e) => e.taskId === taskId && handlers.started(e.round, e.participants.length));
  socket.on('round:participants', (e) => e.taskId === taskId && handlers.participants(e));
  socket.on('round:complete', (r) => r.taskId === taskId && handlers.complete(r));
  socket.on('round:aborted', (e) => e.taskId === taskId && handlers.aborted(e.round, e.error.code));
  socket.on('task:status', (e) => e.taskId === taskId && (e.status === 'completed' || e.status === 'stopped') && handlers.finished(e.status));
  return socket;
}

async function until(condition: () => boolean, timeoutMs: number, what: string, failure: () => string | undefined, progress?: () => void): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let nextProgress = Date.now() + PROGRESS_EVERY_MS;
  while (!condition()) {
    const failed = failure();
    if (failed) throw new Error(failed);
    if (Date.now() > deadline) throw new Error(`${what}: not done after ${seconds(timeoutMs)} s`);
    if (progress && Date.now() >= nextProgress) {
      progress();
      nextProgress += PROGRESS_EVERY_MS;
    }
    await sleep(100);
  }
}

export async function runLoad(options: LoadOptions): Promise<void> {
  const cores = availableParallelism();
  const fds = checkFileLimits(options);
  const tcpAtStart = tcpCounters();
  const slots = slotsByWorker(options);
  const addresses = Math.ceil(options.clients / options.perAddress);
  log(`load: ${options.clients} clients, ${options.perRound} a round, ${options.rounds} rounds, churn ${options.churn * 100} %, ${options.secure ? 'secure, ' : ''}${options.processes} server process(es), ${slots.length} worker processes, ` +
    `${addresses} loopback source addresses (${options.perAddress} clients each)`);
  log(`  NOTE: the simulator and the server share this machine's ${cores} cores (${mib(totalmem())} MiB RAM)`);
  log(`  ${fds}; ${portRange()}`);

  const dataDir = await mkdtemp(join('/tmp', 'tributary-load-'));
  let failure: string | undefined;
  const fail = (message: string) => (failure ??= message);
  const rounds = new Map<number, RoundFigures>();
  let servers: LoadServers | undefined;
  let workers: Worker[] = [];
  let admin: Socket | undefined;
  let scrapers: Array<ReturnType<typeof scrapeEvery>> = [];
  let finished: string | undefined;
  try {
    servers = await startServers(options, dataDir, fail);
    const { url, operator } = servers;
    const task = await api<TaskRecord>(`${url}/api/tasks`, 'POST', loadTaskSpec(options), operator);
    const lengths = await modelLengths(task);
    const m = lengths.reduce((a, b) => a + b, 0);
    if (m !== EXPECTED_PARAMETERS) throw new Error(`the task's model has ${m} parameters, not ${EXPECTED_PARAMETERS}`);
    log(`  ${servers.describe}; task ${task.id}: ${task.spec.model.kind} [${lengths.join(', ')}] = ${m} parameters, ${task.spec.bits}-bit ${task.spec.secure ? 'secure (SecAgg+)' : 'plain'}, deadline ${seconds(task.spec.roundDeadlineMs)} s`);

    const wire = () => {
      const t = totals(workers);
      return { in: t.bytesIn, out: t.bytesOut };
    };
    const ackUploads = (uploads: Array<{ round: number; at: number }>) => {
      for (const u of uploads) rounds.get(u.round)?.acks.push(u.at);
    };
    // Each process's own /metrics: through nginx a scrape would reach any one of them.
    scrapers = servers.metricsUrls.map((u) => scrapeEvery(u, 1_000));
    const samples = () => scrapers.flatMap((sc) => sc.samples);
    workers = startWorkers(slots, ackUploads, fail);
    admin = watch(url, operator, task.id, {
      started: (round, participants) => {
        // In a cluster every process announces its own share of the round.
        const known = rounds.get(round);
        if (known) {
          known.participants += participants;
          return;
        }
        const previous = rounds.get(round - 1);
        if (previous) previous.wireAtEnd = wire();
        rounds.set(round, { round, startedAt: Date.now(), participants, acks: [], aborted: [], wireAtStart: wire() });
        // Drop-outs spread over about as long as the last round took, so they land mid-round (configs, uploads), not after it.
        const windowMs = previous?.completedAt ? Math.max(1_000, 0.8 * (previous.completedAt - previous.startedAt)) : CHURN_WINDOW_MS;
        const churn: ToWorker = { type: 'churn', round, fraction: options.churn, windowMs };
        if (options.churn > 0) for (const w of workers) w.child.send(churn);
      },
      participants: (event) => {
        const r = rounds.get(event.round);
        if (r) r.detail = event;
      },
      complete: (record) => {
        const r = rounds.get(record.round);
        if (!r) return;
        r.completedAt = Date.now();
        r.record = record;
        const lag = samplesBetween(samples(), r.startedAt, r.completedAt);
        log(`  round ${String(record.round).padStart(3)}/${options.rounds}: ${seconds(r.completedAt - r.startedAt)} s, ${record.participants} updates` +
          `${record.dropped ? `, ${record.dropped} dropped` : ''}${record.late ? `, ${record.late} late` : ''}, ` +
          `lag p99 ≤ ${lag.length ? Math.max(...lag.map((x) => x.lagP99Ms)).toFixed(0) : '?'} ms (simulator ≤ ${Math.max(0, ...lagBetween(workers.flatMap((w) => w.lag), r.startedAt, r.completedAt)).toFixed(0)} ms), ` +
          `RSS ${lag.length ? mib(Math.max(...lag.map((x) => x.rssBytes))) : '?'} MiB`);
      },
      aborted: (round, code) => {
        rounds.get(round)?.aborted.push(code);
        log(`  round ${round} aborted: ${code}`);
      },
      finished: (status) => (finished = status),
    });

    // Joining: every client enrolls, connects and reports ready, the task not yet running.
    const joinStarted = Date.now();
    const slotsOf = new Map(workers.map((w, i) => [w, slots[i]!]));
    for (const [w, sl] of slotsOf) {
      const start: ToWorker = { type: 'start', url, taskId: task.id, lengths, samples: SAMPLES_PER_CLIENT, clients: sl, joinConcurrency: Math.max(1, Math.ceil(options.joinConcurrency / workers.length)), seed: SEED };
      w.child.send(start);
    }
    const joined = () => totals(workers).joined;
    await until(() => joined() >= options.clients, 30 * 60_000, 'joining', () => failure, () => {
      const n = joined();
      log(`  joined ${n}/${options.clients} after ${seconds(Date.now() - joinStarted)} s (${(n / ((Date.now() - joinStarted) / 1000)).toFixed(0)}/s); server RSS ${scrapers.map((sc) => mib(sc.samples.at(-1)?.rssBytes ?? 0)).join(' + ')} MiB`);
    });
    const joinMs = Date.now() - joinStarted;
    log(`  all ${options.clients} joined in ${seconds(joinMs)} s: ${(options.clients / (joinMs / 1000)).toFixed(0)} clients/s`);

    // Rounds.
    const roundsStarted = Date.now();
    await api(`${url}/api/tasks/${task.id}/start`, 'POST', undefined, operator);
    await until(() => finished !== undefined, options.rounds * (options.deadlineMs + 60_000), 'rounds', () => failure, () => {
      const current = Math.max(0, ...rounds.keys());
      const r = rounds.get(current);
      if (r && r.completedAt === undefined) log(`    round ${current}: ${r.acks.length}/${r.participants} uploads acked after ${seconds(Date.now() - r.startedAt)} s`);
    });
    const roundsMs = Date.now() - roundsStarted;
    await sleep(1_500); // the workers' next reports
    const final = totals(workers);
    const last = rounds.get(Math.max(...rounds.keys()));
    if (last) last.wireAtEnd = { in: final.bytesIn, out: final.bytesOut };
    const simulatorLag = workers.flatMap((w) => w.lag);
    const figures = perRound([...rounds.values()].sort((a, b) => a.round - b.round), samples(), simulatorLag);
    const exact = options.secure ? await checkSecureSums(url, operator, task, lengths, await secureSums(workers)) : undefined;
    await writeReport(options, {
      cores, fds, addresses, joinMs, roundsStartedAt: roundsStarted, roundsMs, finished: finished!, figures, final, samples: samples(), simulatorLag,
      perProcess: scrapers.map((sc) => memoryAcross(figures, sc.samples)), scrapeFailures: scrapers.reduce((n, sc) => n + sc.failures(), 0),
      lastErrors: workers.map((w) => w.lastError).filter((e): e is string => !!e), m, exact, tcp: grown(tcpAtStart, tcpCounters()),
    });
  } catch (error) {
    log(`  state kept in ${dataDir}`);
    throw error;
  } finally {
    for (const sc of scrapers) sc.stop();
    admin?.close();
    for (const w of workers) if (w.child.connected) w.child.send({ type: 'stop' } satisfies ToWorker);
    await Promise.all(workers.map((w) => (w.child.exitCode === null ? new Promise((resolve) => w.child.once('exit', resolve)) : undefined)));
    await servers?.stop();
  }
  await rm(dataDir, { recursive: true, force: true });
}

/** The servers a run loads: one embedded `tributary serve`, or a local cluster behind nginx. */
interface LoadServers {
  /** Where clients, the admin socket and REST calls go. */
  url: string;
  /** Each process's own address, for its /metrics. */
  metricsUrls: string[];
  operator: string;
  describe: string;
  stop(): Promise<void>;
}

async function startServers(options: LoadOptions, dataDir: string, fail: (message: string) => void): Promise<LoadServers> {
  const heartbeat = ['--heartbeat-timeout', String(options.heartbeatTimeoutS)];
  if (options.processes === 1) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const server = spawnTributary(['serve', '--port', String(port), '--data-dir', dataDir, '--log-level', 'warn', ...heartbeat], join(dataDir, 'server.log'));
    server.once('exit', (code, signal) => fail(`the server exited (${code ?? signal}); see ${join(dataDir, 'server.log')}`));
    await waitForHealth(url, server);
    return {
      url, metricsUrls: [url], operator: operatorToken(dataDir), describe: `server ${url} (pid ${server.pid}, state in ${dataDir})`,
      stop: async () => {
        if (server.exitCode !== null) return;
        server.kill('SIGTERM');
        await Promise.race([new Promise((resolve) => server.once('exit', resolve)), sleep(10_000)]);
        if (server.exitCode === null) server.kill('SIGKILL');
      },
    };
  }
  // nginx holds two connections a client (theirs and its upstream's), plus the bench's own.
  const cluster: BenchCluster = await startBenchCluster({ processes: options.processes, dir: dataDir, connections: Math.max(16_384, 2 * options.clients + 1_024), serveArgs: heartbeat });
  for (const s of cluster.servers) s.child()?.once('exit', (code, signal) => fail(`server ${s.index} exited (${code ?? signal}); see ${s.log}`));
  return {
    url: cluster.url, metricsUrls: cluster.servers.map((s) => s.url), operator: cluster.operator,
    describe: `${options.processes} server processes (${cluster.servers.map((s) => s.url).join(', ')}) on Redis and PostgreSQL, behind nginx ${cluster.url}; state in ${dataDir}`,
    stop: cluster.stop,
  };
}

/** A figure after round 2 and at the last round's end: its growth across the rounds. */
interface Span {
  afterRound2: number;
  end: number;
}

/** One process's memory after round 2 and at the last round's end: RSS, and the JS heap and external memory inside it. */
function memoryAcross(figures: ReturnType<typeof perRound>, samples: readonly MetricsSample[]): { rss: Span; heap: Span; external: Span } {
  const at = (round: number) => {
    const f = figures.find((x) => x.round === round);
    return f && Number.isFinite(f.roundMs) ? samples.filter((s) => s.at <= f.startedAt + f.roundMs + 1_000).at(-1) : undefined;
  };
  const [second, last] = [at(Math.min(2, figures.length)), at(figures.length)];
  const span = (pick: (s: MetricsSample) => number): Span => ({ afterRound2: second ? pick(second) : Number.NaN, end: last ? pick(last) : Number.NaN });
  return { rss: span((s) => s.rssBytes), heap: span((s) => s.heapUsedBytes), external: span((s) => s.externalBytes) };
}

/** Every worker's secure inputs, summed per round. */
async function secureSums(workers: readonly Worker[]): Promise<Map<number, SecureRoundSum[]>> {
  const replies = await Promise.all(workers.map((w) => new Promise<SecureRoundSum[]>((resolve) => {
    const listener = (message: FromWorker) => {
      if (message.type !== 'secure-sums') return;
      w.child.off('message', listener);
      resolve(message.sums);
    };
    w.child.on('message', listener);
    w.child.send({ type: 'secure-sums' } satisfies ToWorker);
  })));
  const byRound = new Map<number, SecureRoundSum[]>();
  for (const sum of replies.flat()) byRound.set(sum.round, [...(byRound.get(sum.round) ?? []), sum]);
  return byRound;
}

/**
 * Each published model, bit for bit: the previous round's model stepped by the mean that
 * the plain sum of every acknowledged input's levels (in the round's ring) stands for.
 * A mask left in, a group's sum lost or counted twice, or weights on different scales
 * would each change it.
 */
async function checkSecureSums(url: string, operator: string, task: TaskRecord, lengths: number[], sums: Map<number, SecureRoundSum[]>): Promise<{ rounds: number; exact: number; inputs: number[] }> {
  const weightsAt = async (round: number) => {
    const response = await fetch(`${url}/api/tasks/${task.id}/model/weights.bin?round=${round}`, { headers: { authorization: `Bearer ${operator}` } });
    if (!response.ok) throw new Error(`GET weights.bin?round=${round}: HTTP ${response.status}`);
    return decodeWeights(new Uint8Array(await response.arrayBuffer()), lengths);
  };
  const strategy = createStrategy(task.spec);
  const recorded = await api<RoundRecord[]>(`${url}/api/tasks/${task.id}/rounds`, 'GET', undefined, operator);
  let exact = 0;
  const inputs: number[] = [];
  let previous = await weightsAt(0);
  for (const record of recorded) {
    const parts = sums.get(record.round) ?? [];
    const first = parts[0];
    const published = await weightsAt(record.round);
    inputs.push(parts.reduce((n, p) => n + p.inputs, 0));
    if (first && parts.every((p) => p.ringBits === first.ringBits && p.sampleScale === first.sampleScale)) {
      const total = newRingVector(first.ringBits, first.levels.length);
      const mask = first.ringBits === 32 ? 0xffffffff : 2 ** first.ringBits - 1;
      for (const p of parts) addInto(total, fromLevels(p.levels.map((v) => v & mask), first.ringBits), first.ringBits);
      const modelLength = total.length;
      const { mean } = readSecureSum(total.subarray(0, modelLength), first, { survivors: inputs.at(-1)!, samples: parts.reduce((n, p) => n + p.weight, 0) }, task.spec, lengths, undefined);
      const expected = await strategy.step(previous, mean, record.round);
      const same = expected.every((t, i) => Buffer.from(t.buffer, t.byteOffset, t.byteLength).equals(Buffer.from(published[i]!.buffer, published[i]!.byteOffset, published[i]!.byteLength)));
      if (same) exact++;
      else log(`  round ${record.round}: the published model differs from the one the clients' levels give`);
    }
    previous = published;
  }
  return { rounds: recorded.length, exact, inputs };
}

interface Outcome {
  cores: number;
  fds: string;
  addresses: number;
  joinMs: number;
  roundsStartedAt: number;
  roundsMs: number;
  finished: string;
  figures: ReturnType<typeof perRound>;
  final: WorkerCounters;
  samples: MetricsSample[];
  simulatorLag: LagSample[];
  /** Each server process's memory after round 2 and at the end. */
  perProcess: Array<ReturnType<typeof memoryAcross>>;
  scrapeFailures: number;
  lastErrors: string[];
  m: number;
  /** Secure runs: rounds whose published model matched the clients' levels bit for bit, and inputs per round. */
  exact: { rounds: number; exact: number; inputs: number[] } | undefined;
  /** The kernel's TcpExt counters, grown during the run. */
  tcp: Record<string, number>;
}

/** The kernel's TcpExt counters (Linux /proc/net/netstat); none elsewhere. */
function tcpCounters(): Record<string, number> {
  let text: string;
  try {
    text = readFileSync('/proc/net/netstat', 'utf8');
  } catch {
    return {};
  }
  const [names, values] = text.split('\n').filter((line) => line.startsWith('TcpExt:')).map((line) => line.split(/\s+/).slice(1));
  return Object.fromEntries((names ?? []).map((name, i) => [name, Number(values?.[i])]));
}

/** `{ a: 2, b: 1 }` as "a 2, b 1", most first. */
function tally(counts: Record<string, number>): string {
  return Object.entries(counts).sort((x, y) => y[1] - x[1]).map(([name, n]) => `${name} ${n}`).join(', ');
}

function grown(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([name, n]) => [name, n - (before[name] ?? 0)]));
}

function growth(span: Span): string {
  return `${mib(span.afterRound2)} → ${mib(span.end)} MiB (${(100 * (span.end / span.afterRound2 - 1)).toFixed(1)} %)`;
}

async function writeReport(options: LoadOptions, o: Outcome): Promise<void> {
  const { figures, final } = o;
  const done = figures.filter((f) => f.participants > 0 && !Number.isNaN(f.roundMs));
  const allCompleted = o.finished === 'completed' && done.length === options.rounds;
  const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '—');
  const roundTable = table(
    ['round', 'updates', 'dropped', 'late', 'round s', 'server s', 'publish ms', 'seen ms', 'lag p99 ms', 'lag max ms', 'sim lag p99 ms', 'RSS peak MiB', 'RSS end MiB', 'up MiB (server)', 'up MiB (clients)', 'down MiB (clients)'],
    figures.map((f) => [f.round, f.participants, f.dropped, f.late, seconds(f.roundMs), seconds(f.serverRoundMs), ms(f.publishMs), ms(f.publishSeenMs), ms(f.lagP99Ms), ms(f.lagMaxMs), ms(f.simulatorLagP99Ms),
      mib(f.rssPeakBytes), mib(f.rssEndBytes), mib(f.uploadBytes), mib(f.clientBytesOut), mib(f.clientBytesIn)]),
  );
  const joinSamples = o.samples.filter((s) => s.at <= o.roundsStartedAt);
  const roundTimes = done.map((f) => f.roundMs);
  const publish = done.map((f) => f.publishMs).filter(Number.isFinite);
  const lag = o.samples.map((s) => s.lagP99Ms).filter(Number.isFinite);
  const simLag = o.simulatorLag.map((s) => s.p99Ms).filter(Number.isFinite);
  const summary = table(['figure', 'value'], [
    ['connect rate (enroll + connect + join + ready, until all joined)', `${(options.clients / (o.joinMs / 1000)).toFixed(0)} clients/s (${seconds(o.joinMs)} s for ${options.clients})`],
    ['round time p50 / p95 (admin round:started → round:complete)', `${seconds(quantile(roundTimes, 0.5))} s / ${seconds(quantile(roundTimes, 0.95))} s`],
    ['last accepted upload → published model (server records) p50 / max', `${ms(quantile(publish, 0.5))} ms / ${ms(Math.max(...publish))} ms`],
    ['server event-loop lag p99 (per 1-s scrape): p50 / p99 / max of scrapes', `${ms(quantile(lag, 0.5))} / ${ms(quantile(lag, 0.99))} / ${ms(Math.max(...lag))} ms`],
    ['server event-loop lag p99 while joining (max)', `${ms(Math.max(...joinSamples.map((s) => s.lagP99Ms)))} ms`],
    ['simulator (worker) event-loop lag p99 (per 1-s report): p50 / p99 / max', `${ms(quantile(simLag, 0.5))} / ${ms(quantile(simLag, 0.99))} / ${ms(Math.max(...simLag))} ms`],
    ['server RSS: after joining / peak', `${mib(joinSamples.at(-1)?.rssBytes ?? Number.NaN)} MiB / ${mib(Math.max(...o.samples.map((s) => s.rssBytes)))} MiB`],
    ['bytes to the server (client TCP writes) / from it (client TCP reads)', `${mib(final.bytesOut)} MiB / ${mib(final.bytesIn)} MiB`],
    ['accepted upload bytes (server tributary_upload_bytes_total)', `${mib(figures.reduce((a, f) => a + f.uploadBytes, 0))} MiB`],
    ['client reconnects / sessions resumed / sessions lost', `${final.reconnects} / ${final.resumed} / ${final.sessionsLost}`],
    ['joins refused for now and asked again', String(final.joinRetries)],
    ['round configs verified / with weights / uploads acked', `${final.roundConfigs} / ${final.weightsReceived} / ${final.uploads}`],
    ['client errors, by code', `${final.errors}${final.errors ? ` (${tally(final.errorCodes)})` : ''}`],
    ['client connections lost, by reason (churn included)', tally(final.dropReasons) || '0'],
    ['kernel TCP during the run: memory-pressure episodes / connections aborted on timeout', `${o.tcp.TCPMemoryPressures ?? '?'} / ${o.tcp.TCPAbortOnTimeout ?? '?'}`],
    ...o.perProcess.map((p, i) => [`server${o.perProcess.length > 1 ? ` process ${i}` : ''} after round 2 → end: RSS (of it JS heap, external)`,
      `${growth(p.rss)} (${growth(p.heap)}, ${growth(p.external)})`]),
    ...(o.exact ? [['published models equal to the clients\' summed levels, bit for bit', `${o.exact.exact}/${o.exact.rounds} rounds (inputs acknowledged per round: ${o.exact.inputs.join(', ')})`]] : []),
    ['every round completed', allCompleted ? `yes (${done.length}/${options.rounds}, task ${o.finished})` : `NO (${done.length}/${options.rounds}, task ${o.finished})`],
  ]);
  const report = [
    `Load: ${options.clients} simulated clients, ${options.perRound} a round, ${options.rounds} rounds, churn ${options.churn * 100} % a round; heartbeat timeout ${options.heartbeatTimeoutS} s; ` +
      `8-bit ${options.secure ? 'secure (SecAgg+)' : 'plain'} updates of m = ${o.m}; ${options.workers} worker processes, ${o.addresses} loopback source addresses; ` +
      (options.processes > 1 ? `${options.processes} server processes on Redis and PostgreSQL behind nginx` : 'one embedded server process (SQLite)'),
    `The simulator and the server${options.processes > 1 ? 's (and Redis, PostgreSQL, nginx)' : ''} share this machine's ${o.cores} cores: every figure includes the simulator's load. ${o.fds}.`,
    '"publish ms": server clock, durationMs − the last delivered participant\'s elapsedMs (round start → its last chunk); "seen ms": bench clock, ' +
      'the last complete upload ack a client got → round:complete on the admin socket.',
    '',
    summary,
    '',
    roundTable,
  ].join('\n');
  console.log(`\n${report}`);
  const name = `load${options.processes > 1 ? `-${options.processes}p` : ''}${options.secure ? '-secure' : ''}`;
  await mkdir(options.out, { recursive: true });
  await writeFile(join(options.out, `${name}.txt`), `${report}\n`);
  await writeFile(join(options.out, `${name}.json`), `${JSON.stringify({ options, cores: o.cores, joinMs: o.joinMs, roundsMs: o.roundsMs, finished: o.finished, allCompleted, counters: final, rounds: figures, perProcess: o.perProcess, exact: o.exact, metrics: o.samples, scrapeFailures: o.scrapeFailures }, null, 1)}\n`);
  log(`  written: ${join(options.out, `${name}.txt`)}, ${join(options.out, `${name}.json`)}`);
}

export async function run(options: BenchOptions): Promise<void> {
  await runLoad(loadOptions(options, argsAfterName()));
}

// `node --import tsx bench/load.ts --clients … --per-round …`: the same bench without the CLI's option parser.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runLoad(loadOptions({}, process.argv.slice(2)));
  process.exit(0);
}
