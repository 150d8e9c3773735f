import { monitorEventLoopDelay } from 'node:perf_hooks';
import { cryptoReady, hash, signingKeyPairFromSeed, utf8 } from '../../shared/crypto/sodium.ts';
import { createRng, deriveSeed, shuffleInPlace } from '../../shared/random.ts';
import { zeroCounters, type FromWorker, type SecureRoundSum, type ToWorker, type WorkerCounters } from './messages.ts';
import { SimClient, type SimContext } from './sim-client.ts';

/**
 * A load-bench worker process (child_process.fork of this module): drives its share of the
 * simulated clients, each on its own socket from its own loopback address, and reports
 * counters every second and upload acks as they come. Started with `{ type: 'start' }`.
 */

/** Distinct random deltas per worker; each upload rounds one of them stochastically with its own seed. */
const DELTA_POOL = 4;
const REPORT_EVERY_MS = 1_000;

const send = (message: FromWorker) => process.send?.(message);

const counters: WorkerCounters = zeroCounters();
let clients: SimClient[] = [];
let lastError: string | undefined;
let acks: Array<{ round: number; at: number }> = [];
let seed = 0;
/** A starved worker answers its sockets' heartbeats late: the bench tells its lag beside the servers'. */
const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();
/** Secure rounds' acknowledged inputs, summed per round. */
const secureSums = new Map<number, SecureRoundSum>();

function addSecureInput(input: Parameters<SimContext['secured']>[0]): void {
  let sum = secureSums.get(input.round);
  if (!sum) secureSums.set(input.round, (sum = { round: input.round, levels: new Uint32Array(input.levels.length), inputs: 0, weight: 0, ringBits: input.ringBits, clips: input.clips, sampleScale: input.sampleScale }));
  // Uint32Array arithmetic wraps mod 2^32, which every ring (2^w, w ≤ 32) divides.
  const into = sum.levels;
  for (let i = 0; i < input.levels.length; i++) into[i]! += input.levels[i]!;
  sum.inputs++;
  sum.weight += input.weight;
}

function report(): void {
  let bytesIn = 0;
  let bytesOut = 0;
  for (const c of clients) {
    const wire = c.wireBytes();
    bytesIn += wire.in;
    bytesOut += wire.out;
  }
  Object.assign(counters, { bytesIn, bytesOut });
  if (acks.length > 0) {
    send({ type: 'uploaded', uploads: acks });
    acks = [];
  }
  send({ type: 'report', counters, lagP99Ms: lag.percentile(99) / 1e6, ...(lastError ? { lastError } : {}) });
  lag.reset();
}

function randomDeltas(lengths: readonly number[], workerSeed: number): Float32Array[][] {
  return Array.from({ length: DELTA_POOL }, (_, k) => {
    const rng = createRng(deriveSeed(workerSeed, 'load-delta', k));
    return lengths.map((n) => {
      const delta = new Float32Array(n);
      for (let i = 0; i < n; i++) delta[i] = (rng.next() - 0.5) * 0.02;
      return delta;
    });
  });
}

async function start(message: Extract<ToWorker, { type: 'start' }>): Promise<void> {
  await cryptoReady();
  seed = message.seed;
  const context: SimContext = {
    url: message.url,
    taskId: message.taskId,
    lengths: message.lengths,
    samples: message.samples,
    seed: message.seed,
    deltas: randomDeltas(message.lengths, deriveSeed(message.seed, 'worker', message.clients[0]?.index ?? 0)),
    counters,
    uploaded: (round, at) => acks.push({ round, at }),
    secured: addSecureInput,
    failed: (error) => {
      lastError = error.message;
    },
  };
  clients = message.clients.map(({ index, address }) => {
    const identity = signingKeyPairFromSeed(hash(utf8(`tributary/load-bench/${message.seed}/${index}`)));
    return new SimClient(index, address, identity, context);
  });
  setInterval(report, REPORT_EVERY_MS).unref();
  send({ type: 'ready' });
  // A bounded number of joins in flight: enroll, connect, challenge, join, ready.
  let next = 0;
  const lane = async () => {
    while (next < clients.length) {
      const client = clients[next++]!;
      await client.enroll();
      await client.connect();
    }
  };
  await Promise.all(Array.from({ length: Math.min(message.joinConcurrency, clients.length) }, lane));
  report();
}

/** This round's drop-outs: a seeded fraction of the joined clients, each dropping at a random moment of the window. */
function churn(message: Extract<ToWorker, { type: 'churn' }>): void {
  const rng = createRng(deriveSeed(seed, 'load-churn', message.round, clients[0]?.index ?? 0));
  const joined = clients.filter((c) => c.joined);
  const dropping = shuffleInPlace(joined, rng).slice(0, Math.round(message.fraction * joined.length));
  for (const client of dropping) setTimeout(() => client.drop(), rng.next() * message.windowMs);
}

process.on('message', (message: ToWorker) => {
  if (message.type === 'start') {
    start(message).catch((error: unknown) => {
      send({ type: 'failed', message: error instanceof Error ? `${error.message}` : String(error) });
    });
  } else if (message.type === 'churn') {
    churn(message);
  } else if (message.type === 'secure-sums') {
    send({ type: 'secure-sums', sums: [...secureSums.values()] });
  } else {
    report();
    for (const c of clients) c.close();
    setTimeout(() => process.exit(0), 200);
  }
});
process.on('disconnect', () => process.exit(0));
