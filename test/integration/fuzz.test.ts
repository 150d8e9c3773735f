import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { io } from 'socket.io-client';
import { describe, expect, it } from 'vitest';
import type { FederatedClient } from '../../client/federated-client.ts';
import { CLIENT_EVENT_ACCESS } from '../../server/gateway/gateway.ts';
import { cryptoReady, signingKeyPairFromSeed } from '../../shared/crypto/sodium.ts';
import { isErrorCode } from '../../shared/errors.ts';
import { createRng, type Rng } from '../../shared/random.ts';
import { inProcessClient, joinRaw, startHarness, type Harness, type RawSocket } from '../support/harness.ts';

/**
 * A bounded fuzz on loopback: while a round runs, tens of connections send thousands of
 * random and malformed socket messages and HTTP requests. The server must answer every
 * one with a coded error (or a proper success), never crash, and the round's aggregate
 * must come out as in the same seeded round without the fuzz: bit for bit, except that the
 * round folds updates in arrival order, so float64 rounding may move a value by one float32
 * ulp (a fuzzed-in change to any update would move values by far more).
 */

const SOCKETS = 40;
const MESSAGES_PER_SOCKET = 200; // the default per-connection burst: nothing is rate-limited away
/** All sockets come from loopback: the per-address budget is raised past the fuzz's 8,000 messages so each reaches its handler. */
const ADDRESS_LIMITS = { connections: 64, perSecond: 200, burst: 10_000 };
const IN_FLIGHT = 8;
const HTTP_REQUESTS = 2_500;
const SEED = 20261127;

const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng.next() * items.length)]!;
const int = (rng: Rng, n: number) => Math.floor(rng.next() * n);

function randomString(rng: Rng): string {
  const length = pick(rng, [0, 1, 8, 64, 2_000]);
  return Array.from({ length }, () => String.fromCodePoint(pick(rng, [0, 0x41 + int(rng, 26), 0x7f, 0xe9, 0x1f600, 0xfffd]))).join('');
}

function randomValue(rng: Rng, depth = 0): unknown {
  switch (int(rng, depth > 2 ? 6 : 10)) {
    case 0: return null;
    case 1: return pick(rng, [0, -1, 1, 2 ** 31, 2 ** 53, -(2 ** 53), 0.5, -0, 1e308, NaN, Infinity, -Infinity]);
    case 2: return randomString(rng);
    case 3: return rng.next() < 0.5;
    case 4: return new Uint8Array(pick(rng, [0, 1, 31, 32, 33, 63, 64, 65, 4_096, 65_536])).map(() => int(rng, 256));
    case 5: return pick(rng, [undefined, '', '1', '__proto__', 'constructor']);
    case 6: {
      // Huge arrays hold small numbers: every message stays under the socket's size limit (past it the transport just hangs up).
      const length = pick(rng, [0, 3, 50, 20_000]);
      return Array.from({ length }, () => (length > 50 || depth > 1 ? int(rng, 1000) : randomValue(rng, depth + 1)));
    }
    default: {
      const out: Record<string, unknown> = {};
      for (let i = int(rng, 6); i > 0; i--) out[pick(rng, ['taskId', 'round', 'kind', 'index', 'count', 'totalBytes', 'samples', 'proof', 'identityKey', 'resume', 'clientId', 'token', '__proto__', 'x'])] = randomValue(rng, depth + 1);
      return out;
    }
  }
}

/** A valid payload of each client event (replayed and forged values are drawn in), before one part is broken. */
function validPayload(rng: Rng, event: string, taskId: number, victims: string[]): Record<string, unknown> {
  const round = pick(rng, [1, 1, 2, 7, 1e6]); // the round, an old one replayed, or one not yet begun
  const ref = { taskId: pick(rng, [taskId, taskId, taskId + 1, 999]), round };
  switch (event) {
    case 'auth:challenge': return {};
    case 'task:join': return { taskId: ref.taskId, kind: pick(rng, ['edge', 'gpu', 'browser']), proof: new Uint8Array(64), identityKey: new Uint8Array(32).fill(int(rng, 256)), ...(rng.next() < 0.5 ? { resume: { clientId: pick(rng, victims), token: new Uint8Array(32) } } : {}) };
    case 'client:ready': return { taskId: ref.taskId, samples: pick(rng, [1, 1000, 100_000_000]), backend: 'cpu', cachedVersion: pick(rng, [-1, 0, 5]) };
    case 'update:chunk': return { ...ref, index: pick(rng, [0, 0, 1, 3, 65_535]), count: pick(rng, [1, 2, 65_536]), totalBytes: pick(rng, [16, 8_192, 199_000, 2 ** 31]), samples: pick(rng, [1, 600]), attempt: pick(rng, ['0000000000000000', 'ffffffffffffffff']) };
    case 'secagg:advertise': return { ...ref, shareKey: new Uint8Array(32), maskKey: new Uint8Array(32), commitment: new Uint8Array(32), signature: new Uint8Array(64) };
    case 'secagg:share': return { ...ref, boxes: new Uint8Array(pick(rng, [0, 110, 4_096])) };
    case 'secagg:confirm': return { ...ref, signature: new Uint8Array(64) };
    case 'secagg:reveal': return { ...ref, shares: new Uint8Array(pick(rng, [0, 37, 370])) };
    default: return ref;
  }
}

/** A plausible message gone wrong: a valid payload with a field broken, dropped or added; replayed; or noise. */
function fuzzMessage(rng: Rng, taskId: number, victims: string[]): { event: string; args: unknown[] } {
  const event = pick(rng, [...Object.keys(CLIENT_EVENT_ACCESS), ...Object.keys(CLIENT_EVENT_ACCESS), 'round:start', 'admin:anything', '', 'constructor']);
  const payload = validPayload(rng, event, taskId, victims);
  const roll = rng.next();
  if (roll < 0.2) return { event, args: [randomValue(rng)] };
  if (roll < 0.5) {
    const key = pick(rng, Object.keys(payload).length ? Object.keys(payload) : ['x']);
    payload[key] = randomValue(rng);
  } else if (roll < 0.6) {
    delete payload[pick(rng, Object.keys(payload).length ? Object.keys(payload) : ['x'])];
  } else if (roll < 0.7) {
    payload[pick(rng, ['extra', 'isAdmin', 'constructor'])] = randomValue(rng);
  } // else: well-formed, but replayed, forged or out of turn
  const chunk = new Uint8Array(pick(rng, [0, 1, 16, 8_192, 262_144])).map(() => int(rng, 256)); // truncated, duplicated, a whole chunk's worth
  return { event, args: event === 'update:chunk' ? [payload, chunk] : [payload] };
}

/**
 * What the transport looks at before any handler: binary parts (socket.io's parser takes
 * at most 10) and bytes (a chunk plus 16 KiB). Past either it hangs up without an answer.
 */
function transportCost(value: unknown): { parts: number; bytes: number } {
  if (ArrayBuffer.isView(value)) return { parts: 1, bytes: value.byteLength };
  if (value && typeof value === 'object') {
    return Object.values(value).reduce((sum: { parts: number; bytes: number }, v) => {
      const c = transportCost(v);
      return { parts: sum.parts + c.parts, bytes: sum.bytes + c.bytes + 8 };
    }, { parts: 0, bytes: 2 });
  }
  return { parts: 0, bytes: typeof value === 'string' ? 3 * value.length + 2 : 24 };
}

const withinTransportLimits = (args: unknown[]) => {
  const { parts, bytes } = transportCost(args);
  return parts <= 10 && bytes < 256 * 1024;
};

interface Tally {
  tried: number;
  /** Sent while the round was still collecting and aggregating. */
  duringRound: number;
  roundOpen: boolean;
  rejected: number;
  accepted: number;
  /** Answers that were not a coded error or a success: INTERNAL errors, 5xx, no answer. */
  crashes: number;
  codes: Map<string, number>;
}

/** Fuzzing connections: half anonymous, half joined as enrolled clients (so their messages get past the join). */
async function fuzzConnections(h: Harness, taskId: number): Promise<RawSocket[]> {
  await cryptoReady();
  const connections: RawSocket[] = [];
  for (let i = 0; i < SOCKETS; i++) {
    connections.push(i % 2 === 0 ? io(h.url, { transports: ['websocket'] }) : (await joinRaw(h.url, taskId, (key) => h.enroll(taskId, key))).socket);
  }
  return connections;
}

async function fuzzSockets(connections: RawSocket[], taskId: number, victims: string[], rng: Rng, tally: Tally): Promise<void> {
  await Promise.all(connections.map(async (socket) => {
    // A few messages in flight per connection, as a misbehaving client would keep them; not a firehose.
    for (let m = 0; m < MESSAGES_PER_SOCKET; m += IN_FLIGHT) {
      const batch: Array<Promise<void>> = [];
      for (let k = 0; k < IN_FLIGHT; k++) {
        let message = fuzzMessage(rng, taskId, victims);
        // Past the transport's limits there is no answer to give, only a hang-up: tested apart below.
        while (!withinTransportLimits(message.args)) message = fuzzMessage(rng, taskId, victims);
        tally.tried++;
        if (tally.roundOpen) tally.duringRound++;
        batch.push((socket.timeout(30_000).emitWithAck as (e: string, ...a: unknown[]) => Promise<{ ok: boolean; error?: { code: string } }>)(message.event, ...message.args).then(
          (reply) => {
            if (reply.ok) tally.accepted++;
            else if (isErrorCode(reply.error?.code) && reply.error.code !== 'INTERNAL') {
              tally.rejected++;
              tally.codes.set(reply.error.code, (tally.codes.get(reply.error.code) ?? 0) + 1);
            } else tally.crashes++;
          },
          () => {
            tally.crashes++; // no answer
          },
        ));
      }
      await Promise.all(batch);
    }
    socket.disconnect();
  }));
}

async function fuzzHttp(h: Harness, rng: Rng, viewerToken: string, tally: Tally): Promise<void> {
  const routes = h.app.routes().filter((r) => r.method !== 'HEAD');
  for (let i = 0; i < HTTP_REQUESTS; i++) {
    const route = pick(rng, routes);
    const path = route.url.replace(':id', String(pick(rng, [1, 0, -1, 'x', 2 ** 60]))).replace(':file', pick(rng, ['model.json', '../etc/passwd'])).replace(':key', 'zz').replace('*', pick(rng, ['index.html', '..%2f..%2fetc%2fpasswd']));
    const headers: Record<string, string> = {};
    if (rng.next() < 0.3) headers.authorization = pick(rng, [`Bearer ${viewerToken}`, 'Bearer trb_api_forged', 'Basic x', 'Bearer ']);
    if (rng.next() < 0.2) headers.cookie = pick(rng, ['trb_session=forged', 'trb_session=', 'trb_session=%00']);
    let body: string | undefined;
    if (route.method !== 'GET' && route.method !== 'DELETE') {
      headers['content-type'] = pick(rng, ['application/json', 'application/json', 'text/plain', 'application/x-www-form-urlencoded']);
      body = rng.next() < 0.2 ? pick(rng, ['{', 'null', '[]', '{"name":', '\u0000', 'x'.repeat(2_000_000)]) : JSON.stringify(randomValue(rng));
    }
    tally.tried++;
    if (tally.roundOpen) tally.duringRound++;
    try {
      const res = await fetch(`${h.url}${path}`, { method: route.method, headers, ...(body === undefined ? {} : { body }) });
      const text = await res.text();
      if (res.status >= 500) tally.crashes++;
      else if (res.status < 400) tally.accepted++;
      else {
        const code = (JSON.parse(text) as { code?: string }).code;
        if (isErrorCode(code)) {
          tally.rejected++;
          tally.codes.set(code, (tally.codes.get(code) ?? 0) + 1);
        } else tally.crashes++;
      }
    } catch {
      tally.crashes++;
    }
  }
}

/** One seeded round with three real clients; with `fuzz`, the fuzz runs while it is in progress. */
/** The largest distance, in float32 ulps, between two checkpoints' weights (same-signed values; a sign change counts as far). */
function maxUlpDistance(a: Buffer, b: Buffer): number {
  expect(a.length).toBe(b.length);
  const x = new Int32Array(Uint8Array.from(a).buffer);
  const y = new Int32Array(Uint8Array.from(b).buffer);
  let max = 0;
  for (let i = 0; i < x.length; i++) max = Math.max(max, (x[i]! < 0) === (y[i]! < 0) ? Math.abs(x[i]! - y[i]!) : Number.MAX_SAFE_INTEGER);
  return max;
}

async function seededRound(fuzz: boolean): Promise<{ weights: Buffer; tally: Tally }> {
  await cryptoReady();
  const h = await startHarness({ addressLimits: ADDRESS_LIMITS });
  const tally: Tally = { tried: 0, duringRound: 0, roundOpen: true, rejected: 0, accepted: 0, crashes: 0, codes: new Map() };
  const clients: FederatedClient[] = [];
  try {
    const task = await h.createTask({ name: 'fuzzed', shards: 3, clientsPerRound: 3, minUpdates: 3, rounds: 1, trainLimit: 3_000, testLimit: 1_000, seed: 7 });
    for (let shard = 0; shard < 3; shard++) {
      // Fixed identities and seeds: both runs train the same three updates.
      // Throttling only adds pauses (the same updates come out); it keeps the fuzzed round open long enough.
      const throttle = fuzz ? 0.03 : 1;
      clients.push(inProcessClient(h, task.id, shard, { seed: 100 + shard, throttle, identity: signingKeyPairFromSeed(new Uint8Array(32).fill(shard + 1)) }));
    }
    const victims: string[] = []; // the real clients' session ids: fuzzers try to take them over
    for (const c of clients) c.on('joined', (e) => victims.push(e.clientId));
    await Promise.all(clients.map((c) => c.start()));
    const connections = fuzz ? await fuzzConnections(h, task.id) : [];
    const { user } = await h.app.accounts.createUser('fuzz-viewer', 'fuzz viewer password', 'viewer', { actor: 'test', ip: '' });
    const { token } = await h.app.accounts.createApiToken(user, 'fuzz', '');
    await h.app.coordinator.start(task.id);
    const watch = setInterval(() => void h.app.store.listRounds(task.id).then((r) => (tally.roundOpen = r.length === 0)), 100);
    // The three real clients are selected before any fuzzer could report ready (a ready fuzzer could be picked).
    await h.waitFor(async () => (await h.app.audit.list({ limit: 20 })).some((e) => e.action === 'round.start'), 60_000);
    if (fuzz) {
      const rng = createRng(SEED);
      await Promise.all([fuzzSockets(connections, task.id, victims, rng, tally), fuzzHttp(h, rng, token, tally)]);
      await pastTransportLimits(h);
      expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
    }
    // A bound, not a measurement: on a machine with both cores taken by other work the fuzzed round has needed over 120 s.
    await h.waitForStatus(task.id, 'completed', 300_000);
    clearInterval(watch);
    const weights = readFileSync(join(h.dataDir, 'checkpoints', `task-${task.id}`, 'round-1', 'weights.bin'));
    return { weights, tally };
  } finally {
    for (const c of clients) c.stop();
    await h.close();
  }
}

/** Messages past the transport's limits: only their own connection is closed, and the server carries on. */
async function pastTransportLimits(h: Harness): Promise<void> {
  for (const args of [[new Uint8Array(400_000)], Array.from({ length: 11 }, () => new Uint8Array(1))]) {
    const socket = io(h.url, { transports: ['websocket'] });
    await new Promise<void>((resolve) => socket.on('connect', () => resolve()));
    const closed = new Promise<void>((resolve) => socket.on('disconnect', () => resolve()));
    socket.emit('client:ready', ...args);
    await closed;
  }
  expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
}

describe('fuzzing a live server during a round', () => {
  it('answers every malformed message with a coded error, stays up, and leaves the aggregate untouched', { timeout: 720_000 }, async () => {
    const quiet = await seededRound(false);
    const fuzzed = await seededRound(true);
    const { tally } = fuzzed;
    console.log(
      `fuzz: ${tally.tried} messages tried (${SOCKETS * MESSAGES_PER_SOCKET} socket, ${HTTP_REQUESTS} HTTP; ${tally.duringRound} while the round ran), ${tally.rejected} rejected with a code, ` +
        `${tally.accepted} accepted as valid, ${tally.crashes} crashes; aggregate identical to the unfuzzed round: ${fuzzed.weights.equals(quiet.weights)} (at most ${maxUlpDistance(fuzzed.weights, quiet.weights)} ulp apart)\n` +
        `codes: ${[...tally.codes].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ')}`,
    );
    expect(tally.tried).toBeGreaterThanOrEqual(10_000);
    expect(tally.crashes).toBe(0);
    expect(tally.rejected + tally.accepted).toBe(tally.tried);
    expect(tally.rejected).toBeGreaterThan(tally.tried * 0.8);
    expect(tally.duringRound).toBeGreaterThanOrEqual(1_000);
    expect(maxUlpDistance(fuzzed.weights, quiet.weights)).toBeLessThanOrEqual(1);
  });
});
