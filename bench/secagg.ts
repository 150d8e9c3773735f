import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  boxEncrypt,
  concatBytes,
  cryptoReady,
  generateBoxKeyPair,
  seal,
  SEAL_OVERHEAD_BYTES,
} from '../shared/crypto/sodium.ts';
import { expandSeed } from '../shared/secagg/mask-stream.ts';
import { encodeMaskedUpload, PARTNERS_SIGNATURE_BYTES } from '../shared/secagg/protocol.ts';
import { safeThreshold } from '../shared/secagg/parameters.ts';
import { addInto, encodeRing, ringWireBytes, type RingVector } from '../shared/secagg/ring.ts';
import { sumLevels } from '../shared/secagg/math.ts';
import { MAX_SHARES, splitSecret } from '../shared/secagg/shamir.ts';
import type { BenchOptions } from './options.ts';
import { table } from './report.ts';
import {
  createRound,
  levelsOf,
  maskClient,
  maskPublicKeys,
  maskSpec,
  pickDropped,
  unmaskJob,
  neighboursForDropouts,
  revealShares,
  shareKeys,
  type SimRound,
} from '../test/support/secagg-sim.ts';
import { runUnmaskJob } from '../shared/secagg/unmask.ts';
import { startTsWorker, type TsWorker } from '../server/ts-worker.ts';
import { UnmaskPool } from '../server/secagg/unmask-pool.ts';
import { maskGroups, type MaskTask, type TimeTask } from './secagg-worker.ts';

/**
 * Secure aggregation cost at Bonawitz et al.'s scale (m = 100,000 parameters, 8-bit levels,
 * n = 100 and 500 clients) with the complete graph (SecAgg) and the default k-regular graph
 * (SecAgg+), clients dropping after sharing keys and before uploading: the case where the
 * server must rebuild the dropped clients' mask keys and strip every mask they shared.
 */

const M = 100_000;
const BITS = 8;
const DROP_RATES = [0, 0.1, 0.3] as const;
const SAMPLE_CLIENTS = 7;
const SEED = 2024;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function sameWords(a: RingVector, b: RingVector): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

interface Row {
  n: number;
  graph: string;
  k: number;
  holders: number;
  t: number;
  drop: number;
  w: number;
  clientMs: number;
  sharesMs: number;
  server1: number;
  server2: number;
  uploadBytes: number;
  exact: boolean;
}

/** One client's phase-2 work, for context: split both secrets and box a share to each holder. */
async function timeSharing(round: SimRound, u: number, holderKeys: readonly Uint8Array[]): Promise<number> {
  const c = round.clients[u]!;
  const t0 = performance.now();
  const h = c.holders.length;
  const b = await splitSecret(c.selfSeed, h, round.threshold);
  const sk = await splitSecret(c.maskKeys.secretKey, h, round.threshold);
  c.holders.forEach((holder, i) => {
    if (holder !== u) boxEncrypt(concatBytes(b[i]!, sk[i]!), holderKeys[holder]!, c.shareKeys.secretKey);
  });
  return performance.now() - t0;
}

/** Client side: a sample of clients, one at a time, in a fresh thread holding only their inputs (as a device would). */
async function timeClientSide(round: SimRound, keys: Uint8Array[], shared: Set<number>): Promise<{ clientMs: number; sharesMs: number; uploadBytes: number }> {
  const { w, context } = round;
  const n = round.config.n;
  const sample = Array.from({ length: SAMPLE_CLIENTS }, (_, i) => Math.floor((i * n) / SAMPLE_CLIENTS));
  const timer = startTsWorker<TimeTask, number[]>(new URL('./secagg-worker.ts', import.meta.url));
  const clientTimes = await timer
    .call({
      kind: 'time', w, m: M, bits: BITS, seed: round.config.seed, context, publicKeys: keys, warmUp: 2,
      clients: [...sample.slice(0, 2), ...sample].map((u) => {
        const c = round.clients[u]!;
        return { index: u, maskKeys: c.maskKeys, selfSeed: c.selfSeed, partners: maskSpec(round, u, shared).partners };
      }),
    })
    .finally(() => timer.close());
  // As a client sends it: its partner signature (64 zero bytes stand in), then the packed words, sealed.
  const masked = encodeRing(maskClient(maskSpec(round, sample[0]!, shared), keys, context, w, expandSeed), w);
  const upload = seal(encodeMaskedUpload(new Uint8Array(PARTNERS_SIGNATURE_BYTES), masked), generateBoxKeyPair().publicKey);
  const shareKeysOfHolders = round.clients.map((c) => c.shareKeys.publicKey);
  const sharingTimes: number[] = [];
  for (const u of sample.slice(0, 3)) sharingTimes.push(await timeSharing(round, u, shareKeysOfHolders));
  const sharesMs = median(sharingTimes);
  const uploadBytes = upload.length;
  if (uploadBytes !== PARTNERS_SIGNATURE_BYTES + ringWireBytes(M, w) + SEAL_OVERHEAD_BYTES) throw new Error(`unexpected upload size ${uploadBytes}`);

  return { clientMs: median(clientTimes), sharesMs, uploadBytes };
}

/** Every client's real masked upload, summed per nested drop-out group (30 % ⊃ 10 %), dealt over this thread and the helper. */
async function maskedSums(round: SimRound, keys: Uint8Array[], all: number[], helper: TsWorker<MaskTask, RingVector[]>) {
  const { w, context } = round;
  const n = round.config.n;
  log(`  masking all ${n} clients…`);
  const d10 = new Set(pickDropped(n, 0.1, SEED));
  const d30 = new Set(pickDropped(n, 0.3, SEED));
  const group = (u: number) => (d10.has(u) ? 2 : d30.has(u) ? 1 : 0);
  const task = (mine: number[]): MaskTask => ({
    kind: 'mask',
    w,
    m: M,
    bits: BITS,
    seed: round.config.seed,
    context,
    publicKeys: keys,
    groups: 3,
    clients: mine.map((u) => {
      const c = round.clients[u]!;
      return { index: u, maskKeys: c.maskKeys, selfSeed: c.selfSeed, partners: [...c.neighbours], group: group(u) };
    }),
  });
  const remote = helper.call(task(all.filter((u) => u % 2 === 1)));
  const groups = maskGroups(task(all.filter((u) => u % 2 === 0)));
  (await remote).forEach((g, i) => addInto(groups[i]!, g, w));
  const s30 = groups[0]!;
  const s10 = s30.slice();
  addInto(s10, groups[1]!, w);
  const s0 = s10.slice();
  addInto(s0, groups[2]!, w);

  return { d10, d30, s0, s10, s30 };
}

async function benchConfig(n: number, complete: boolean, helper: TsWorker<MaskTask, RingVector[]>, pool: UnmaskPool): Promise<Row[]> {
  // k-regular: the fewest neighbours whose safe threshold survives the 30 % drop-out measured below.
  const k = complete ? n - 1 : neighboursForDropouts(n, 0.3);
  const graph = complete ? 'complete' : 'k-regular';
  log(`n = ${n}, ${graph} (k = ${k}): keys and shares…`);
  const round = await createRound({
    n,
    m: M,
    bits: BITS,
    k,
    seed: SEED + n,
    threshold: safeThreshold,
    encryptShares: false, // measured separately below; boxing 127,000 shares would only slow the setup
  });
  const all = round.clients.map((c) => c.index);
  const shared = new Set(all);
  await shareKeys(round, all);
  const keys = maskPublicKeys(round);
  const { w } = round;

  const { clientMs, sharesMs, uploadBytes } = await timeClientSide(round, keys, shared);
  const { d10, d30, s0, s10, s30 } = await maskedSums(round, keys, all, helper);

  const rows: Row[] = [];
  for (const drop of DROP_RATES) {
    const dropped = drop === 0 ? new Set<number>() : drop === 0.1 ? d10 : d30;
    const maskedSum = drop === 0 ? s0 : drop === 0.1 ? s10 : s30;
    const uploaded = new Set(all.filter((u) => !dropped.has(u)));
    const revealed = revealShares(round, uploaded, uploaded);
    log(`  unmasking with ${dropped.size} dropped…`);

    let t0 = performance.now();
    const { vector: single } = await runUnmaskJob(unmaskJob(round, shared, uploaded, revealed), maskedSum, expandSeed);
    const server1 = (performance.now() - t0) / 1000;

    // The live server's path: the job dealt to one worker thread per core.
    t0 = performance.now();
    const { vector: dual } = await pool.unmask(unmaskJob(round, shared, uploaded, revealed), maskedSum);
    const server2 = (performance.now() - t0) / 1000;

    const expected = sumLevels([...uploaded].map((u) => levelsOf(round, u)), w);
    const exact = sameWords(single, expected) && sameWords(dual, expected);
    if (!exact) throw new Error(`n = ${n} ${graph} ${drop * 100} %: unmasked sum differs from the plain sum`);
    rows.push({ n, graph, k, holders: round.clients[0]!.holders.length, t: round.threshold, drop, w, clientMs, sharesMs, server1, server2, uploadBytes, exact });
  }
  return rows;
}

export async function run(options: BenchOptions): Promise<void> {
  await cryptoReady();
  const helper = startTsWorker<MaskTask, RingVector[]>(new URL('./secagg-worker.ts', import.meta.url));
  const pool = new UnmaskPool(2);
  const rows: Row[] = [];
  try {
    for (const n of [100, 500]) for (const complete of [true, false]) rows.push(...(await benchConfig(n, complete, helper, pool)));
  } finally {
    await Promise.all([helper.close(), pool.close()]);
  }

  const main = table(
    ['n', 'graph', 'k', 't / holders', 'drop', 'w', 'client mask ms', 'client shares ms', 'server s (1 thread)', 'server s (2 threads)', 'upload B', '× 8-bit', 'exact'],
    rows.map((r) => [
      r.n,
      r.graph,
      r.k,
      `${r.t} / ${r.holders}${r.holders < r.k + 1 ? ' ‡' : ''}`,
      `${r.drop * 100} %`,
      r.w,
      r.clientMs.toFixed(1),
      r.sharesMs.toFixed(1),
      r.server1.toFixed(2),
      r.server2.toFixed(2),
      r.uploadBytes,
      (r.uploadBytes / M).toFixed(2),
      r.exact ? 'yes' : 'NO',
    ]),
  );

  const find = (n: number, graph: string, drop: number) => rows.find((r) => r.n === n && r.graph === graph && r.drop === drop)!;
  const verdict = (value: number, limit: number) => (value <= limit ? 'met' : 'missed');
  const c500 = find(500, 'complete', 0.3);
  const targetRows: Array<Array<string | number>> = [
    ['complete, n = 500: client masking', '≤ 169.8 ms (849/5)', `${c500.clientMs.toFixed(1)} ms`, '', verdict(c500.clientMs, 849 / 5)],
    ['complete, n = 500, 30 %: server', '≤ 14.3 s (143/10)', `${c500.server1.toFixed(2)} s`, `${c500.server2.toFixed(2)} s`, `${verdict(c500.server1, 14.3)} / ${verdict(c500.server2, 14.3)}`],
  ];
  for (const n of [100, 500]) {
    const r = find(n, 'k-regular', 0.3);
    targetRows.push([`k-regular, n = ${n}, 30 %: server`, '≤ 2 s', `${r.server1.toFixed(2)} s`, `${r.server2.toFixed(2)} s`, `${verdict(r.server1, 2)} / ${verdict(r.server2, 2)}`]);
  }
  const targets = table(['target', 'limit', '1 thread', '2 threads', 'verdict (1 / 2 threads)'], targetRows);

  const notes = [
    `m = ${M.toLocaleString('en')} parameters, ${BITS}-bit levels, ring w = ${BITS} + ⌈log2 n⌉ bits, uploaded bit-packed at w bits a parameter.`,
    'Drop-outs leave after sharing keys and before uploading; every uploader answers the unmask request.',
    `client mask ms: median over ${SAMPLE_CLIENTS} clients, one at a time in a fresh thread holding only their inputs (as a device`,
    '  holds only its own), Node fast path (OpenSSL ChaCha20), including the X25519 key agreement with every neighbour.',
    '  client shares ms: splitting both secrets and boxing a share to each holder',
  '  (median of 3; not part of the masking time).',
    'server s: rebuilding every needed secret from t shares, checking each rebuilt mask key against its public key,',
    '  re-deriving the dropped clients\' pair seeds and removing all masks. 1 thread: runUnmaskJob on the main thread;',
    '  2 threads: server/unmask-pool.ts, the live server\'s path (the job dealt to a worker per core, the parts added).',
    '  Not included: opening the sealed uploads and summing them.',
    `upload B: the packed ring words + the ${PARTNERS_SIGNATURE_BYTES}-byte partner signature + ${SEAL_OVERHEAD_BYTES} bytes of sealed-box overhead; × 8-bit: against 1 byte per parameter.`,
    'exact: the unmasked sum equals the plain sum of the uploaders\' levels bit for bit (1- and 2-thread results).',
    `‡ shamir-secret-sharing works over GF(256), so at most ${MAX_SHARES} shares: with the complete graph at n = 500 each client`,
    `  still masks with all ${499} others, but shares its secrets with a committee of itself and ${MAX_SHARES - 1} neighbours`,
    '  (a seeded order), any t of whom can rebuild them.',
    't: the smallest safe threshold, a majority of the h holders (2t > h: a server lying about who dropped cannot',
    '  rebuild both of a client\'s secrets). k-regular rows take the fewest neighbours (from the default 2⌈log2 n⌉ up) for which',
    '  that threshold survives a round losing 30 % of its clients after sharing keys with probability ≥ 1 − 10⁻³',
    '  (hypergeometric tail, union bound over the n secrets); the server and clients refuse any lower threshold.',
  ];

  const report = `Secure aggregation (SecAgg / SecAgg+)\n\n${main}\n\nTargets\n${targets}\n\n${notes.join('\n')}\n`;
  console.log(`\n${report}`);
  await mkdir(options.out, { recursive: true });
  await writeFile(join(options.out, 'secagg.txt'), report);
}
