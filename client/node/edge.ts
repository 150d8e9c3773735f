import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { loadOrCreateKeyFile } from '../../node/key-file.ts';
import { cryptoReady, fromBase64, toBase64 } from '../../shared/crypto/sodium.ts';
import { TributaryError } from '../../shared/errors.ts';
import type { TaskRecord } from '../../shared/protocol/task.ts';
import { FederatedClient, type ActivatedBackend, type FederatedClientOptions, type SecurePhase } from '../federated-client.ts';
import { loadDemoShard } from './demo-data.ts';
import { loadLocalData } from './local-data.ts';
import { parseDatasetDirs } from '../../node/dataset-files.ts';
import { isBuiltin } from '../../shared/data/builtin.ts';
import { outputUnitsOf } from '../../shared/data/schema.ts';
import { clientAttack } from './attack.ts';
import type { AttackName } from '../../shared/ml/attacks.ts';
import { measureThroughput } from '../probe.ts';
import { activateNodeBackend } from './tf.ts';

export interface EdgeClientOptions {
  server: string;
  taskId: number;
  /** The device's own data (a CSV file, a folder of per-label image folders, or a text file); default: the task's demo shard. */
  data?: string;
  /** `name=dir` pairs: where built-in data sets' files are (for demo shards). */
  datasetDir?: string[];
  shard?: number;
  backend?: string;
  seed?: number;
  /** One JSON object per event on stdout instead of readable lines. */
  json?: boolean;
  /** Where server keys are pinned, by server URL (trust on first use). */
  pinFile?: string;
  /** This device's long-term Ed25519 identity, created at first run (default ~/.tributary/identity.json). */
  identityFile?: string;
  /** Fault injection: SIGKILL this process when a secure round reaches `phase` (in `round`, default the first). */
  crashAt?: { phase: SecurePhase; round?: number };
  /** Train at this fraction of full speed. */
  throttle?: number;
  /**
   * Enroll this device's identity with an operator's token (needed once per task), or by
   * open enrollment. The token is `token`, else the content of `tokenFile`, else
   * TRIBUTARY_TOKEN from the environment (see `enrollmentTokenOf`).
   */
  token?: string;
  tokenFile?: string;
  openEnrollment?: boolean;
  /** Robustness experiments: play a malicious client (see client/node/attack.ts). */
  attack?: AttackName;
  /** With attack alie: z_max (the demo computes it from the task's n and f). */
  alieZ?: number;
  /** Fault injection: drop the connection at random times, this many ms apart on average. */
  disconnectEvery?: number;
  /** What this process joins as (a GPU node needs a gpu enrollment); default edge. */
  kind?: 'edge' | 'gpu';
  /**
   * Activates the TF.js backend for the task (default: WASM or CPU, see `activateNodeBackend`).
   * What it measured is reported to the server; its warning is printed at join.
   */
  activateBackend?: (task: TaskRecord) => Promise<ActivatedBackend & { warning?: string }>;
}

export const DEFAULT_PIN_FILE = join(homedir(), '.tributary', 'known-servers.json');
export const DEFAULT_IDENTITY_FILE = join(homedir(), '.tributary', 'identity.json');

function readPins(file: string): Record<string, string> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
  } catch {
    return {};
  }
}

/**
 * The enrollment token a device was given: `--token` (visible to every user of the
 * machine in `ps`), else the file `--token-file` names, else TRIBUTARY_TOKEN; the last two
 * stay out of the process's argument list.
 */
export function enrollmentTokenOf(options: Pick<EdgeClientOptions, 'token' | 'tokenFile'>, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (options.token) return options.token;
  if (options.tokenFile) {
    const token = readFileSync(options.tokenFile, 'utf8').trim();
    if (!token) throw new TributaryError('ENROLLMENT_TOKEN_INVALID', `${options.tokenFile} is empty`);
    return token;
  }
  return env.TRIBUTARY_TOKEN || undefined;
}

/**
 * An edge device: a Node process that trains on its local shard whenever the server
 * selects it. Resolves when the task completes or is stopped, and fails when the server
 * ends its session (its enrollment revoked, or another process took its identity's session).
 */
export async function runEdgeClient(options: EdgeClientOptions): Promise<'completed' | 'stopped'> {
  const pinFile = options.pinFile ?? DEFAULT_PIN_FILE;
  const pinned = readPins(pinFile)[options.server];
  await cryptoReady();
  // Kept across runs, so the server recognises the device its enrollment named.
  const identity = loadOrCreateKeyFile(options.identityFile ?? DEFAULT_IDENTITY_FILE);
  const token = enrollmentTokenOf(options);
  // Kept for the join message: the adapter, throughput and any fall-back warning.
  let activated: (ActivatedBackend & { warning?: string }) | undefined;
  const datasetDirs = parseDatasetDirs(options.datasetDir ?? [], isBuiltin);
  let attack: ReturnType<typeof clientAttack> | undefined;
  const client = new FederatedClient({
    ...(pinned ? { pinnedServerKey: fromBase64(pinned) } : {}),
    identity,
    server: options.server,
    taskId: options.taskId,
    kind: options.kind ?? 'edge',
    seed: options.seed,
    throttle: options.throttle ?? 1,
    ...(token ? { enrollment: { token } } : options.openEnrollment ? { enrollment: 'open' as const } : {}),
    ...(options.shard === undefined ? {} : { shard: options.shard }),
    activateBackend: async (task) => {
      // Measured here, reported to the scheduler, which sizes this device's work by it.
      activated = options.activateBackend
        ? await options.activateBackend(task)
        : { name: await activateNodeBackend(task.spec.model, options.backend), throughput: await measureThroughput(task.spec, options.throttle ?? 1) };
      return { ...activated, memoryMb: Math.round(totalmem() / 2 ** 20) };
    },
    data: async ({ task, shard }) => {
      const set = options.data ? await loadLocalData(options.data, task.spec.data) : await loadDemoShard(task.spec, shard ?? 0, datasetDirs);
      if (options.attack) attack = clientAttack(options.attack, { classes: outputUnitsOf(task.spec.data), alieZ: options.alieZ ?? 1, seed: options.seed ?? 0 });
      return attack ? attack.data(set) : set;
    },
    ...(options.attack ? { transformUpdate: (update: Parameters<NonNullable<FederatedClientOptions['transformUpdate']>>[0]) => attack!.transform(update) } : {}),
  });
  const say = (event: string, fields: Record<string, unknown>, text: string) => {
    console.log(options.json ? JSON.stringify({ event, ...fields }) : text);
  };
  client.on('joined', (e) => {
    if (!pinned) {
      mkdirSync(dirname(pinFile), { recursive: true });
      writeFileSync(pinFile, JSON.stringify({ ...readPins(pinFile), [options.server]: toBase64(e.serverKey) }, null, 2));
    }
    if (e.resumed) {
      say('resumed', { clientId: e.clientId }, `reconnected: session ${e.clientId.slice(0, 8)} resumed`);
      return;
    }
    const { adapter, throughput, warning } = activated ?? {};
    const measured = [adapter, throughput === undefined ? undefined : `${throughput.toFixed(0)} samples/s`].filter(Boolean).join(', ');
    say('joined', { clientId: e.clientId, shard: e.shard, samples: e.samples, backend: e.backend, ...(activated ? { adapter, throughput, warning } : {}), serverFingerprint: e.serverFingerprint },
      `joined task ${e.task.id} (${e.task.spec.name}) as ${e.clientId.slice(0, 8)}: shard ${e.shard}, ${e.samples} samples, backend ${e.backend}${measured ? ` (${measured})` : ''}\n` +
      `server key ${e.serverFingerprint} (${pinned ? 'matches the pinned key' : `pinned now in ${pinFile}`})`);
    if (warning && !options.json) console.warn(`warning: ${warning}`);
  });
  client.on('disconnected', (e) => say('disconnected', e, `disconnected (${e.reason}); reconnecting…`));
  client.on('round-abandoned', (e) => say('round-abandoned', e, `round ${e.round} abandoned: ${e.reason}`));
  client.on('round-start', (e) => say('round-start', e, `round ${e.round}: training${e.downloadedWeights ? '' : ' (cached model)'}`));
  client.on('uploaded', (e) => say('uploaded', { round: e.round, bytes: e.bytes, chunks: e.chunks, ...e.train },
    `round ${e.round}: local ${Object.entries(e.train.metrics).map(([k, v]) => `${k} ${v.toPrecision(4)}`).join(', ')}, trained in ${e.train.durationMs} ms, uploaded ${e.bytes} bytes`));
  client.on('evaluated', (e) => say('evaluated', e, `round ${e.round}: model v${e.modelVersion} on ${e.samples} held-out samples: ${Object.entries(e.metrics).map(([k, v]) => `${k} ${v.toPrecision(4)}`).join(', ')}`));
  client.on('model-updated', (e) => say('model-updated', e, `model v${e.version}${e.accuracy === null ? '' : `: test accuracy ${(e.accuracy * 100).toFixed(2)} %`}`));
  client.on('secure-phase', (e) => {
    say('secure-phase', e, `round ${e.round}: secure aggregation, ${e.phase}`);
    const crash = options.crashAt;
    if (crash && crash.phase === e.phase && (crash.round ?? e.round) === e.round) {
      console.error(`crashing on purpose (--crash-at ${e.phase}) in round ${e.round}`);
      process.kill(process.pid, 'SIGKILL'); // no goodbye to the server, as a device losing power
    }
  });
  client.on('error', (e) => console.error(`error: ${e.message}`));
  const finished = untilFinished(client);
  await client.start();
  const chaos = options.disconnectEvery ? dropConnectionsAtRandom(client, options.disconnectEvery) : undefined;
  const status = await finished;
  clearTimeout(chaos?.());
  client.stop();
  return status;
}

/**
 * Resolves when the task ends; fails, with what the server said, when the server ends the
 * session instead: socket.io does not reconnect after that, so waiting would be forever.
 */
function untilFinished(client: FederatedClient): Promise<'completed' | 'stopped'> {
  let lastError: Error | undefined;
  client.on('error', (e) => (lastError = e));
  const finished = new Promise<'completed' | 'stopped'>((resolve, reject) => {
    client.once('finished', (e) => resolve(e.status));
    client.on('disconnected', (e) => e.reason === 'io server disconnect' && reject(lastError ?? new Error('the server ended this session')));
  });
  finished.catch(() => undefined); // awaited after start(); a start() that fails first must not leave it unhandled
  return finished;
}

/** Drops the connection after exponentially distributed pauses (a memoryless flaky network); returns the pending timer. */
function dropConnectionsAtRandom(client: FederatedClient, meanMs: number): () => ReturnType<typeof setTimeout> {
  let timer: ReturnType<typeof setTimeout>;
  const schedule = () => {
    timer = setTimeout(() => {
      client.simulateNetworkDrop();
      schedule();
    }, -Math.log(1 - Math.random()) * meanMs);
  };
  schedule();
  return () => timer;
}
