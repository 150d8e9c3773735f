import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io } from 'socket.io-client';
import { parsePartition } from '../shared/data/partition.ts';
import { BUILTIN_DATASETS, type BuiltinName } from '../shared/data/builtin.ts';
import { DEFAULT_MODELS, type ModelKind } from '../shared/ml/model-spec.ts';
import { createRng, deriveSeed, shuffleInPlace } from '../shared/random.ts';
import type { AdminClientToServerEvents, AdminServerToClientEvents } from '../shared/protocol/events.ts';
import { alieZMax, attackerCount, type ByzantineSpec } from '../shared/ml/attacks.ts';
import type { Aggregation, LocalOptimizer, Privacy, RoundRecord, Scheduling, StrategyName, TaskRecord, TaskSpecInput, TrainingMode, UpdateBits } from '../shared/protocol/task.ts';
import type { Socket } from 'socket.io-client';
import { api, edgeClientArgs, enrollmentToken, freePort, operatorToken, spawnTributary, tokenEnv, waitForHealth } from './processes.ts';
import { superviseClients } from './supervise.ts';

export interface DemoOptions {
  clients: number;
  rounds: number;
  /** The built-in task to train. */
  task: BuiltinName;
  /** An architecture other than the task's own. */
  model?: Exclude<ModelKind, 'layers'>;
  /** Default: Dirichlet(0.5) label skew for images, the data's own sources otherwise. */
  partition?: string;
  bits: UpdateBits;
  /** Local training; each defaults to the task's own. */
  localEpochs?: number;
  batchSize?: number;
  lr?: number;
  optimizer?: LocalOptimizer;
  proximalMu: number;
  seed: number;
  trainLimit: number;
  testLimit: number;
  /** Federated evaluation every k rounds (0: never); default the task default. */
  evalEvery?: number;
  /** `name=dir` pairs: where built-in data sets' files are. */
  datasetDir: string[];
  dataDir?: string;
  port: number;
  backend: string;
  strategy: StrategyName;
  mode: TrainingMode;
  /** uniform (reproducible: every client trains its epochs) or capability (work sized by measured speed). */
  scheduling: Scheduling;
  /** Async: updates per server step (0 = half the clients). */
  bufferSize: number;
  secure: boolean;
  threshold?: number;
  neighbours?: number;
  /** How updates are combined; omitted fields take the task defaults. */
  aggregation?: Partial<Aggregation>;
  /** Differential privacy; omitted fields take the task defaults (off). */
  privacy?: Partial<Privacy>;
  minUpdates?: number;
  /** This fraction of the clients send malicious updates (`client --attack`). */
  byzantine?: ByzantineSpec;
  /** Fault injection: this fraction of the clients SIGKILL themselves at a secure-round phase. */
  drop?: { fraction: number; phase: 'advertised' | 'shared' | 'uploaded'; round: number };
  json: boolean;
}

/** What a demo prints for each completed round with --json. */
export interface DemoRoundLine {
  round: number;
  /** The server's evaluation on the task's test set. */
  accuracy: number | null;
  loss: number | null;
  metrics: Record<string, number>;
  /** Federated evaluation reported in this round (of the model version its participants were sent). */
  federated: RoundRecord['federated'];
  participants: number;
  dropped: number;
  uploadBytesPerParam: number;
  durationMs: number;
  /** What combined and applied the updates, and how many it left out. */
  rule: string;
  discarded: number;
  /** ε spent so far, in a differentially private task. */
  epsilon: number | null;
}

export interface DemoDoneLine {
  done: true;
  rounds: number;
  accuracy: number | null;
  metrics: Record<string, number>;
  wallMs: number;
  /** Client processes that died unexpectedly and were started again. */
  clientRestarts: number;
  /** Client processes that died and could not be brought back: the demo then fails. */
  clientsLost: number;
}

/** round(fraction · n) client numbers, seeded, at least one. */
function pickCrashing(n: number, fraction: number, seed: number): number[] {
  const order = shuffleInPlace(Array.from({ length: n }, (_, i) => i), createRng(deriveSeed('demo-crash', seed)));
  return order.slice(0, Math.max(1, Math.round(fraction * n))).sort((a, b) => a - b);
}

/**
 * The clients that crash on purpose (`--drop`, seeded) and those that attack (`--byzantine`:
 * the last ones, so the choice is reproducible), and each one's extra client flags.
 */
function misbehavingClients(options: DemoOptions, info: (line: string) => void) {
  const { drop, byzantine, clients } = options;
  const crashing = new Set(drop ? pickCrashing(clients, drop.fraction, options.seed) : []);
  const f = byzantine ? attackerCount(byzantine.fraction, clients) : 0;
  const attackers = new Set(Array.from({ length: f }, (_, k) => clients - 1 - k));
  if (drop) info(`clients ${[...crashing].join(', ')} will crash ${drop.phase.replace('ed', '')} in round ${drop.round}`);
  if (byzantine && f > 0) info(`clients ${[...attackers].join(', ')} attack (${byzantine.attack})`);
  const attack = byzantine ? ['--attack', byzantine.attack, ...(byzantine.attack === 'alie' ? ['--alie-z', String(alieZMax(clients, f))] : [])] : [];
  return {
    crashing,
    /** A restarted client keeps its identity (still enrolled) and crashes on purpose only once. */
    flags: (i: number, restarted: boolean): string[] => [
      ...(!restarted && crashing.has(i) && drop ? ['--crash-at', `${drop.phase}:${drop.round}`] : []),
      ...(attackers.has(i) ? attack : []),
    ],
  };
}

/** Scores as people read them: fractions as percentages, the rest to four significant figures. */
export function formatMetrics(metrics: Record<string, number>): string {
  const percent = new Set(['accuracy', 'auc']);
  return Object.entries(metrics)
    .map(([name, v]) => (percent.has(name) ? `${name} ${(v * 100).toFixed(2)} %` : `${name} ${v.toPrecision(4)}`))
    .join('  ');
}

function progressBar(fraction: number, width = 24): string {
  const full = Math.round(fraction * width);
  return `${'█'.repeat(full)}${'░'.repeat(width - full)}`;
}

/** The task a demo (or a benchmark standing in for one) creates. */
export function demoTaskSpec(options: Omit<DemoOptions, 'datasetDir' | 'port' | 'backend' | 'json' | 'drop' | 'byzantine'>): TaskSpecInput {
  const builtin = BUILTIN_DATASETS[options.task];
  const model = options.model && options.model !== builtin.model.kind ? DEFAULT_MODELS[options.model] : builtin.model;
  const partition = options.partition ?? (builtin.schema.kind === 'image' ? 'dirichlet:0.5' : 'source');
  const hyper = {
    ...builtin.defaults.hyper,
    ...(options.localEpochs ? { localEpochs: options.localEpochs } : {}),
    ...(options.batchSize ? { batchSize: options.batchSize } : {}),
    ...(options.lr ? { learningRate: options.lr } : {}),
    ...(options.optimizer ? { optimizer: options.optimizer } : {}),
    proximalMu: options.proximalMu,
  };
  return {
    name: `demo ${options.task} ${model.kind} ${partition} ${options.bits}-bit ${options.aggregation?.rule && options.aggregation.rule !== 'mean' ? `${options.aggregation.rule} ` : ''}${options.strategy}${options.mode === 'async' ? ' async' : ''}${options.secure ? ' secure' : ''}${options.privacy?.mode && options.privacy.mode !== 'off' ? ` ${options.privacy.mode} DP` : ''}`,
    dataset: options.task,
    model,
    partition: parsePartition(partition),
    shards: options.clients,
    rounds: options.rounds,
    clientsPerRound: options.clients,
    bits: options.bits,
    strategy: options.strategy,
    ...(options.aggregation ? { aggregation: options.aggregation } : {}),
    ...(options.privacy ? { privacy: options.privacy } : {}),
    ...(options.minUpdates ? { minUpdates: options.minUpdates } : {}),
    mode: options.mode,
    bufferSize: options.bufferSize,
    scheduling: options.scheduling,
    secure: options.secure,
    threshold: options.threshold ?? 0,
    neighbours: options.neighbours ?? 0,
    hyper,
    trainLimit: options.trainLimit,
    testLimit: options.testLimit,
    ...(options.evalEvery === undefined ? {} : { evaluation: { every: options.evalEvery } }),
    seed: options.seed,
  };
}

/**
 * Watches the task on the /admin namespace: upload progress, each completed round (a line,
 * or a JSON object, and its participants), until the task completes or stops.
 */
function watchTask(adminUrl: string, token: string, taskId: number, options: DemoOptions, records: RoundRecord[]) {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const socket: Socket<AdminServerToClientEvents, AdminClientToServerEvents> = io(adminUrl, { transports: ['websocket'], auth: { token } });
  let fail!: (error: Error) => void;
  const finished = new Promise<'completed' | 'stopped'>((resolve, reject) => {
    fail = reject;
    // Refused at first contact (a bad token): fail. Later, socket.io reconnects by itself; a
    // connect attempt that times out on a loaded machine is not the end of the run.
    let connected = false;
    socket.once('connect', () => (connected = true));
    socket.on('connect_error', (error) => {
      if (!connected) reject(error);
    });
    socket.on('task:status', (e) => {
      if (e.taskId === taskId && (e.status === 'completed' || e.status === 'stopped')) resolve(e.status);
    });
  });
  socket.on('round:upload', (e) => {
    if (!options.json && process.stdout.isTTY && e.taskId === taskId) {
      process.stdout.write(`\r  round ${e.round}/${options.rounds} ${progressBar(e.received / e.expected)} ${e.received}/${e.expected} updates`);
    }
  });
  socket.on('round:complete', (record) => {
    if (record.taskId !== taskId) return;
    records.push(record);
    if (options.json) {
      const line: DemoRoundLine = {
        round: record.round,
        accuracy: record.accuracy,
        loss: record.loss,
        metrics: record.metrics,
        federated: record.federated,
        participants: record.participants,
        dropped: record.dropped,
        uploadBytesPerParam: record.uploadBytesPerParam,
        durationMs: record.durationMs,
        rule: record.rule,
        discarded: record.discarded.length,
        epsilon: record.epsilon,
      };
      out(JSON.stringify(line));
      return;
    }
    if (process.stdout.isTTY) process.stdout.write('\r\x1b[K');
    out(
      `round ${String(record.round).padStart(3)}/${options.rounds}  ${formatMetrics(record.metrics) || 'no server-side test set'}` +
        `${record.federated ? `  federated (v${record.federated.version}, ${record.federated.samples} samples): ${formatMetrics(record.federated.metrics)}` : ''}  ${record.participants} clients${record.dropped ? ` (${record.dropped} dropped)` : ''}  ` +
        `${record.uploadBytesPerParam.toFixed(3)} B/param  ${(record.durationMs / 1000).toFixed(1)} s` +
        `${record.discarded.length ? `  ${record.discarded.length} discarded by ${record.rule}` : ''}${record.epsilon === null ? '' : `  ε ${record.epsilon.toFixed(2)}`}`,
    );
  });
  socket.on('round:participants', (e) => {
    if (options.json || e.taskId !== taskId) return;
    for (const p of e.participants) {
      const work = p.budget === null ? 'full epochs' : `${p.budget} samples`;
      const time = p.elapsedMs === null ? p.outcome : `${(p.elapsedMs / 1000).toFixed(1)} s of ${(e.deadlineMs / 1000).toFixed(0)} s`;
      out(`    ${p.clientId.slice(0, 8)} ${p.kind.padEnd(4)} ${p.backend.padEnd(6)} ${String(Math.round(p.speed)).padStart(6)} samples/s  work: ${work.padEnd(14)} ${time}`);
    }
  });
  return { socket, finished, fail };
}

/**
 * `tributary demo`: a server and N edge clients as separate processes on loopback,
 * R rounds of a built-in task, progress on the terminal (or JSON lines).
 */
export async function runDemo(options: DemoOptions): Promise<boolean> {
  const started = Date.now();
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'tributary-demo-')));
  await mkdir(dataDir, { recursive: true });
  const port = options.port || (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const info = (line: string) => {
    if (!options.json) out(line);
  };
  const children: ChildProcess[] = [];
  let admin: Socket<AdminServerToClientEvents, AdminClientToServerEvents> | undefined;
  const cleanup = () => {
    admin?.disconnect();
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  };
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });

  try {
    info(`server: ${url}  state: ${dataDir}  logs: ${dataDir}/*.log`);
    const operator = operatorToken(dataDir);
    const server = spawnTributary(
      ['serve', '--port', String(port), '--data-dir', dataDir, ...options.datasetDir.flatMap((d) => ['--dataset-dir', d]), '--log-level', process.env.TRIBUTARY_DEMO_LOG_LEVEL ?? 'warn'],
      join(dataDir, 'server.log'),
    );
    children.push(server);
    await waitForHealth(url, server);

    const spec = demoTaskSpec(options);
    const task = await api<TaskRecord>(`${url}/api/tasks`, 'POST', spec, operator);
    // One use per client: a restarted client presents it again, which costs no second use.
    const token = await enrollmentToken(url, task.id, operator, 'demo clients', 'client', { maxUses: options.clients, expiresInHours: 24 });
    info(`task ${task.id}: ${task.spec.name}, ${options.clients} clients, ${options.rounds} rounds`);

    const records: RoundRecord[] = [];
    const watching = watchTask(`${url}/admin`, operator, task.id, options, records);
    admin = watching.socket;
    const finished = Promise.race([
      watching.finished,
      new Promise<never>((_, reject) => server.once('exit', (code) => reject(new Error(`server exited with code ${code} (see ${dataDir}/server.log)`)))),
    ]);
    watching.socket.once('connect', () => {
      void api(`${url}/api/tasks/${task.id}/start`, 'POST', undefined, operator).catch(watching.fail);
    });

    const misbehaving = misbehavingClients(options, info);
    const supervisor = superviseClients(options.clients, (i, restarted) => {
      const args = edgeClientArgs(url, task.id, i, options.datasetDir, dataDir, ['--backend', options.backend, '--seed', String(options.seed * 1000 + i), ...misbehaving.flags(i, restarted)]);
      const child = spawnTributary(args, join(dataDir, `client-${i}.log`), tokenEnv(token), restarted);
      children.push(child);
      return child;
    }, {
      expected: (i, signal) => misbehaving.crashing.has(i) && signal === 'SIGKILL',
      report: (line) => process.stderr.write(`${line} (see ${dataDir}/client-*.log)\n`),
    });

    const status = await finished;
    const { restarts, lost } = supervisor.finish();
    const last = records.at(-1);
    const done: DemoDoneLine = { done: true, rounds: records.length, accuracy: last?.accuracy ?? null, metrics: last?.metrics ?? {}, wallMs: Date.now() - started, clientRestarts: restarts, clientsLost: lost };
    if (options.json) out(JSON.stringify(done));
    else {
      info(`${status}: ${done.rounds} rounds, final ${formatMetrics(done.metrics) || 'model (no server-side test set)'}, wall time ${(done.wallMs / 1000).toFixed(1)} s`);
      if (restarts > 0 || lost > 0) info(`clients: ${restarts} restarted after dying, ${lost} never came back`);
    }
    return status === 'completed' && lost === 0;
  } catch (error) {
    process.stderr.write(`demo failed: ${(error as Error).message}\n`);
    return false;
  } finally {
    cleanup();
  }
}
