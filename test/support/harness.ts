import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import { io, type Socket } from 'socket.io-client';
import { edgeClientArgs, tokenEnv } from '../../cli/processes.ts';
import { cryptoReady, generateSigningKeyPair, seal, sign, type KeyPair } from '../../shared/crypto/sodium.ts';
import { attemptOf, joinProofMessage, type ChunkAck, type ClientKind, type ClientToServerEvents, type JoinReply, type Reply, type RoundStart, type ServerToClientEvents } from '../../shared/protocol/events.ts';
import { encodeUpdate } from '../../shared/codec/update-codec.ts';
import { prependMetricSums } from '../../shared/codec/metric-sums.ts';
import { createRng } from '../../shared/random.ts';
import { FederatedClient, type FederatedClientOptions } from '../../client/federated-client.ts';
import { loadDemoShard } from '../../client/node/demo-data.ts';
import { activateNodeBackend } from '../../client/node/tf.ts';
import { buildApp, type App, type AppOptions } from '../../server/app.ts';
import { withTaskDefaults, type TaskRecord, type TaskSpecInput } from '../../shared/protocol/task.ts';

/** A real server on a loopback port, real client processes, and clean-up for both. */

const bin = fileURLToPath(new URL('../../bin/tributary.js', import.meta.url));

/** An in-process client (real socket on loopback) on a demo shard, for tests that act at exact moments. */
export function inProcessClient(h: Pick<Harness, 'url' | 'token'>, taskId: number, shard: number, options: Partial<FederatedClientOptions> = {}): FederatedClient {
  return new FederatedClient({
    server: h.url,
    enrollment: { token: h.token(taskId) },
    taskId,
    shard,
    kind: 'edge',
    seed: shard,
    activateBackend: (task) => activateNodeBackend(task.spec.model),
    data: ({ task }) => loadDemoShard(task.spec, shard),
    ...options,
  });
}

export type RawSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/**
 * A hand-driven socket joined like a client (challenge, signed proof, enrolled identity),
 * for tests that then send whatever they craft.
 */
export async function joinRaw(url: string, taskId: number, enroll: (identityKey: Uint8Array) => Promise<unknown>, extra: { shard?: number; kind?: ClientKind; identity?: KeyPair; resume?: { clientId: string; token: Uint8Array } } = {}): Promise<{ socket: RawSocket; reply: Reply<JoinReply>; identity: KeyPair }> {
  await cryptoReady();
  const identity = extra.identity ?? generateSigningKeyPair();
  await enroll(identity.publicKey);
  const socket: RawSocket = io(url, { transports: ['websocket'] });
  const challenge = await socket.emitWithAck('auth:challenge', {});
  if (!challenge.ok) throw new Error(challenge.error.message);
  const kind = extra.kind ?? 'edge';
  const proof = sign(joinProofMessage(new Uint8Array(challenge.value.nonce), taskId, kind), identity.secretKey);
  const reply = await socket.emitWithAck('task:join', { taskId, kind, proof, identityKey: identity.publicKey, ...(extra.shard === undefined ? {} : { shard: extra.shard }), ...(extra.resume ? { resume: extra.resume } : {}) });
  return { socket, reply, identity };
}

/** A hand-driven client: joined and ready, it sees each round config and uploads only what and when the test says. */
export interface HandDrivenClient {
  socket: RawSocket;
  serverKey: Uint8Array;
  /** The next round config sent to this client (already-sent ones are queued). */
  nextRoundStart(): Promise<RoundStart>;
  /** Uploads a sealed payload for `start`'s round in chunks of the round's size; resolves with the last chunk's reply. */
  upload(start: RoundStart, payload: Uint8Array): Promise<Reply<ChunkAck>>;
}

/** The default task's MLP tensor lengths (DEFAULT_MODELS.mlp on the default built-in images). */
export const MLP_LENGTHS = [156_800, 200, 40_000, 200, 2_000, 10];

/** A plain upload's payload as a device not asked to evaluate sends it: the round's metric sums as zeros (if it carries any), then the update. */
export function plainPayload(start: RoundStart, update: Uint8Array): Uint8Array {
  return prependMetricSums(undefined, start.metricSums, update);
}

/** A well-formed plain update for `start`: every value `value`, quantized as the round says and sealed to its aggregator. */
export function sealedUpdate(start: RoundStart, value: number, lengths: readonly number[] = MLP_LENGTHS, seed = 7): Uint8Array {
  const delta = lengths.map((n) => new Float32Array(n).fill(value));
  return seal(plainPayload(start, encodeUpdate(delta, { bits: start.bits, clipSigma: start.clipSigma, rng: createRng(seed) })), start.aggregatorKey);
}

export async function handDrivenClient(h: Harness, taskId: number, options: { shard?: number; samples?: number } = {}): Promise<HandDrivenClient> {
  const samples = options.samples ?? 500;
  const { socket, reply } = await joinRaw(h.url, taskId, (key) => h.enroll(taskId, key), options.shard === undefined ? {} : { shard: options.shard });
  if (!reply.ok) throw new Error(reply.error.message);
  const starts: RoundStart[] = [];
  let waiting: ((start: RoundStart) => void) | undefined;
  socket.on('round:start', (start) => {
    if (waiting) waiting(start);
    else starts.push(start);
    waiting = undefined;
  });
  const ready = await socket.emitWithAck('client:ready', { taskId, samples, backend: 'cpu', cachedVersion: -1 });
  if (!ready.ok) throw new Error(ready.error.message);
  return {
    socket,
    serverKey: new Uint8Array(reply.value.serverKey),
    nextRoundStart: () => {
      const queued = starts.shift();
      return queued ? Promise.resolve(queued) : new Promise((resolve) => (waiting = resolve));
    },
    async upload(start, payload) {
      const count = Math.max(1, Math.ceil(payload.byteLength / start.chunkBytes));
      let reply: Reply<ChunkAck> | undefined;
      for (let index = 0; index < count; index++) {
        const meta = { taskId: start.taskId, round: start.round, index, count, totalBytes: payload.byteLength, samples, attempt: attemptOf(new Uint8Array(start.aggregatorKey)) };
        reply = await socket.emitWithAck('update:chunk', meta, payload.subarray(index * start.chunkBytes, (index + 1) * start.chunkBytes));
        if (!reply.ok) break;
      }
      return reply!;
    },
  };
}

export interface Harness {
  app: App;
  url: string;
  dataDir: string;
  /** Creates a task and mints a client enrollment token for it (see `token`). */
  createTask(spec: TaskSpecInput): Promise<TaskRecord>;
  /** The client enrollment token minted with the task. */
  token(taskId: number): string;
  /** An admin's API token: for `/admin` sockets (`auth: { token }`) and requests. */
  adminToken: string;
  /** An in-process request as an admin (bearer API token). */
  asAdmin(options: InjectOptions): Promise<LightMyRequestResponse>;
  /** Enrolls an identity key in a task, as a device with the task's token would. */
  enroll(taskId: number, identityKey: Uint8Array, kind?: 'client' | 'gpu'): Promise<void>;
  spawnClient(taskId: number, shard: number, extra?: string[]): ChildProcess;
  waitForStatus(taskId: number, status: TaskRecord['status'], timeoutMs?: number): Promise<TaskRecord>;
  waitFor(condition: () => Promise<boolean>, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(options: Partial<AppOptions> = {}): Promise<Harness> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tributary-test-'));
  const app = await buildApp({ dataDir, logger: pino({ level: 'silent' }), ...options });
  const url = await app.http.listen({ port: 0, host: '127.0.0.1' });
  const children: ChildProcess[] = [];
  const tokens = new Map<number, string>();
  const { user } = await app.accounts.createUser('harness', 'harness password', 'admin', { actor: 'test', ip: '' });
  const adminToken = (await app.accounts.createApiToken(user, 'harness', '')).token;
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
    dataDir,
    async createTask(spec) {
      const task = await app.store.createTask(withTaskDefaults(spec));
      tokens.set(task.id, (await app.enrollments.createToken(task.id, { kind: 'client', label: 'test', maxUses: 0, expiresInHours: 0 }, { actor: 'test', ip: '' })).token);
      return task;
    },
    token: (taskId) => tokens.get(taskId)!,
    adminToken,
    asAdmin: (options) => app.http.inject({ ...options, headers: { ...options.headers, authorization: `Bearer ${adminToken}` } }),
    async enroll(taskId, identityKey, kind = 'client') {
      const { token } = await app.enrollments.createToken(taskId, { kind, label: 'test', maxUses: 1, expiresInHours: 0 }, { actor: 'test', ip: '' });
      await app.enrollments.enrollWithToken(token, identityKey, '127.0.0.1');
    },
    spawnClient(taskId, shard, extra = []) {
      const args = edgeClientArgs(url, taskId, shard, [], dataDir, ['--seed', String(shard), ...extra]);
      const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'ignore', 'inherit'], env: tokenEnv(tokens.get(taskId)!) });
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
