import { beforeAll, describe, expect, it } from 'vitest';
import { ClientSession } from '../../server/gateway/clients.ts';
import { PrivacyBudget } from '../../server/privacy/budget.ts';
import type { RoundPlan } from '../../server/rounds/scheduler.ts';
import { secureRoundConfig } from '../../server/secagg/masked-round.ts';
import { SecureRound, type MaskedUpload } from '../../server/secagg/secure-round.ts';
import { secureInputLength } from '../../shared/codec/secure-codec.ts';
import { cryptoReady, generateBoxKeyPair, generateSigningKeyPair, type KeyPair } from '../../shared/crypto/sodium.ts';
import type { Weights } from '../../shared/ml/aggregate.ts';
import { clipToNorm, l2Norm } from '../../shared/ml/norms.ts';
import { decodeDistributedSum, distributedDpParams, distributedRingBits, encodeDistributedInput, type DistributedDpParams } from '../../shared/privacy/distributed.ts';
import { skellamNoise } from '../../shared/privacy/noise.ts';
import { withTaskDefaults } from '../../shared/protocol/task.ts';
import { createRng, deriveSeed } from '../../shared/random.ts';
import { SecAggClient } from '../../shared/secagg/client.ts';
import { expandSeed } from '../../shared/secagg/mask-stream.ts';
import { sumLevels } from '../../shared/secagg/math.ts';
import { roundContext, unpackAdvertised, unpackConfirmations } from '../../shared/secagg/protocol.ts';
import { runUnmaskJob } from '../../shared/secagg/unmask.ts';
import { expectCode } from '../support/expect-code.ts';

/**
 * Distributed DP's pure math (shared/privacy/distributed.ts) against hand-computed values,
 * and a SecAgg+ round run with it: real SecAggClient state machines and the real server
 * round, the config built by secureRoundConfig from a task's PrivacyBudget.
 */

const f = (...values: number[]) => Float32Array.from(values);
const zeros = (lengths: readonly number[]): Weights => lengths.map((n) => new Float32Array(n));
/** Ring value as a signed integer in Z(2^w). */
const signed = (u: number, w: number) => (u >= 2 ** (w - 1) ? u - 2 ** w : u);
const signedAll = (v: ArrayLike<number>, w: number) => Array.from(v, (u) => signed(u, w));

interface Encoding {
  params: DistributedDpParams;
  clipNorm: number;
  ringBits: number;
  variance?: number;
  roundingSeed?: number;
  noiseSeed?: number;
  residual?: Weights;
}

function encode(deltas: Weights, e: Encoding): { levels: Uint32Array; residual: Weights } {
  const residual = e.residual ?? zeros(deltas.map((d) => d.length));
  const levels = encodeDistributedInput(deltas, {
    params: e.params,
    clipNorm: e.clipNorm,
    variance: e.variance ?? 0,
    ringBits: e.ringBits,
    residual,
    rng: createRng(e.roundingSeed ?? 1),
    noiseRng: createRng(e.noiseSeed ?? 2),
  });
  return { levels, residual };
}

describe('distributed DP parameters', () => {
  it('derives range, step and sensitivities from d, bits, clipSigma and C', () => {
    // d = 4, 8 bits, clipSigma 2, C = 1:
    //   M = 2⁷ − 1 = 127;  c = 2·1/√4 = 1;  step = c/M = 1/127
    //   l2 = C/step + √d = 127 + 2 = 129;  l1 = min(l2², √d·l2) = min(16641, 258) = 258
    const p = distributedDpParams(4, 8, 2, 1);
    expect(p.maxLevel).toBe(127);
    expect(p.clip).toBe(1);
    expect(p.step).toBe(1 / 127);
    expect(p.l2).toBeCloseTo(129, 10);
    expect(p.l1).toBeCloseTo(258, 10);
    // d = 9, 4 bits, clipSigma 3, C = 2:
    //   M = 7;  c = 3·2/3 = 2;  step = 2/7;  l2 = 2/(2/7) + 3 = 10;  l1 = min(100, 3·10) = 30
    const q = distributedDpParams(9, 4, 3, 2);
    expect(q).toMatchObject({ maxLevel: 7, clip: 2, step: 2 / 7 });
    expect(q.l2).toBeCloseTo(10, 10);
    expect(q.l1).toBeCloseTo(30, 10);
    // c is a float32, as every device computes it: d = 3, clipSigma 1, C = 1 → c = fround(1/√3).
    expect(distributedDpParams(3, 8, 1, 1).clip).toBe(Math.fround(1 / Math.sqrt(3)));
  });

  it('refuses parameters the mechanism cannot run with', () => {
    expectCode(() => distributedDpParams(0, 8, 2, 1), 'PRIVACY_INVALID');
    expectCode(() => distributedDpParams(4, 8, 0, 1), 'PRIVACY_INVALID');
    expectCode(() => distributedDpParams(4, 8, 2, 0), 'PRIVACY_INVALID');
    expectCode(() => distributedDpParams(4, 8, 2, NaN), 'PRIVACY_INVALID');
  });

  it('sizes the ring to hold n devices\' signed levels and 10σ of their noise', () => {
    // w = ⌈log2(2·bound + 2)⌉, bound = n·M + 10·√(n·v):
    //   8 bits, n = 3, v = 0:      bound = 381;                           2·381 + 2 = 764      → 10
    expect(distributedRingBits(8, 3, 0)).toBe(10);
    //   8 bits, n = 10, v = 100:   bound = 1270 + 10·√1000 = 1586.2;    3174.5               → 12
    expect(distributedRingBits(8, 10, 100)).toBe(12);
    //   16 bits, n = 100, v = 1e6: bound = 3,276,700 + 10·10⁴ = 3,376,700; 6,753,402 (2²² < · ≤ 2²³) → 23
    expect(distributedRingBits(16, 100, 1e6)).toBe(23);
    //   16 bits, n = 10⁴, v = 1e14: bound ≈ 3.3e8 + 1e10, 35 bits: more than the ring has.
    expectCode(() => distributedRingBits(16, 10_000, 1e14), 'PRIVACY_INVALID');
  });
});

describe('encoding one device\'s input', () => {
  // d = 4, 8 bits, clipSigma 2, C = 1: c = 1, step = 1/127 (see above).
  const params = distributedDpParams(4, 8, 2, 1);
  const w = 10;

  it('without noise, is the signed stochastic rounding of the input, in Z(2^w), then one zero per tensor', () => {
    // ‖(0.3, −0.2, 0.5, 0.1)‖ = √0.39 = 0.62 ≤ C: not clipped. x = v/step = 127·v:
    //   38.1 → 38 or 39;  −25.4 → −26 or −25;  63.5 → 63 or 64;  12.7 → 12 or 13
    const input = [f(0.3, -0.2, 0.5, 0.1)];
    for (let seed = 1; seed <= 20; seed++) {
      const { levels, residual } = encode(input, { params, clipNorm: 1, ringBits: w, roundingSeed: seed });
      expect(levels).toHaveLength(4 + 1);
      const q = signedAll(levels, w);
      expect([38, 39]).toContain(q[0]);
      expect([-26, -25]).toContain(q[1]);
      expect([63, 64]).toContain(q[2]);
      expect([12, 13]).toContain(q[3]);
      expect(q[4]).toBe(0);
      // Negative levels are two's complement in the ring: −26 is 2¹⁰ − 26 = 998.
      expect(levels[1]).toBe(q[1]! + 1024);
      // The rounding error is carried: residual = v − q·step, less than one step.
      for (let i = 0; i < 4; i++) {
        expect(Math.abs(residual[0]![i]!)).toBeLessThan(params.step);
        expect(q[i]! * params.step + residual[0]![i]!).toBeCloseTo(input[0]![i]!, 6);
      }
    }
  });

  it('rounds without bias: over 20,000 encodings each level averages to v/step', () => {
    // q = ⌊x⌋ + Bernoulli(x − ⌊x⌋): sd of one draw √(p(1−p)), of the mean √(p(1−p)/N). The
    // margin is 6 of those (p = 0.5: 0.021), a miss by chance < 2e-9 per coordinate; rounding
    // to nearest would be off by 0.1 to 0.4 here, rounding down by 0.1 to 0.7.
    const input = [f(0.3, -0.2, 0.5, 0.1)];
    const N = 20_000;
    const sums = [0, 0, 0, 0];
    const rng = createRng(77);
    for (let k = 0; k < N; k++) {
      const levels = encodeDistributedInput(input, { params, clipNorm: 1, variance: 0, ringBits: w, residual: zeros([4]), rng, noiseRng: createRng(0) });
      for (let i = 0; i < 4; i++) sums[i]! += signed(levels[i]!, w);
    }
    for (let i = 0; i < 4; i++) {
      const x = input[0]![i]! / params.step;
      const p = x - Math.floor(x);
      expect(Math.abs(sums[i]! / N - x), `coordinate ${i}`).toBeLessThan(6 * Math.sqrt((p * (1 - p)) / N));
    }
  });

  it('clips the input and its carried residual to C first, and drops the excess', () => {
    // (3, 4, 0, 0): ‖·‖ = 5 → (0.6, 0.8, 0, 0); x = 76.2 → 76 or 77, 101.6 → 101 or 102.
    const { levels, residual } = encode([f(3, 4, 0, 0)], { params, clipNorm: 1, ringBits: w });
    const q = signedAll(levels, w);
    expect([76, 77]).toContain(q[0]);
    expect([101, 102]).toContain(q[1]);
    expect(q.slice(2)).toEqual([0, 0, 0]);
    // The residual holds the rounding error of the clipped value only: 2.4 and 3.2 are gone.
    expect(Math.abs(residual[0]![0]!)).toBeLessThan(params.step);
    expect(Math.abs(residual[0]![1]!)).toBeLessThan(params.step);
    // A residual carried in is added before clipping: 0.1 + 0.2 = 0.3 → x = 38.1.
    const carried = encode([f(0.2, 0, 0, 0)], { params, clipNorm: 1, ringBits: w, residual: [f(0.1, 0, 0, 0)] });
    expect([38, 39]).toContain(signed(carried.levels[0]!, w));
  });

  it('saturates a value beyond the range c at ±M and carries what it cut', () => {
    // clipSigma 1: c = 1·1/√4 = 0.5, step = 0.5/127. (0.9, −0.9, 0, 0) has norm 1.27 → clipped
    // to (0.7071, −0.7071, 0, 0), then saturated at ±0.5: levels ±127, residual ±0.2071.
    const narrow = distributedDpParams(4, 8, 1, 1);
    expect(narrow.clip).toBe(0.5);
    const { levels, residual } = encode([f(0.9, -0.9, 0, 0)], { params: narrow, clipNorm: 1, ringBits: w });
    expect(signedAll(levels, w).slice(0, 2)).toEqual([127, -127]);
    expect(residual[0]![0]).toBeCloseTo(Math.SQRT1_2 - 0.5, 6);
    expect(residual[0]![1]).toBeCloseTo(-(Math.SQRT1_2 - 0.5), 6);
  });

  it('keeps ‖q‖₂ below C/step + √d, each level one of the two around x, across tensors', () => {
    // d = 1000 in tensors of 600 and 400, 8 bits, clipSigma 6, C = 1; an input of norm 5.
    const lengths = [600, 400];
    const big = distributedDpParams(1000, 8, 6, 1);
    const rng = createRng(5);
    const raw = lengths.map((n) => Float32Array.from({ length: n }, () => rng.next() - 0.5));
    const scale = 5 / l2Norm(raw);
    const input = raw.map((t) => t.map((v) => v * scale));
    const ringBits = 12;
    const { levels } = encode(input, { params: big, clipNorm: 1, ringBits, roundingSeed: 9 });
    expect(levels).toHaveLength(1000 + 2);
    const q = signedAll(levels, ringBits);
    const clipped = clipToNorm(input, 1).clipped;
    let at = 0;
    let sumSq = 0;
    for (const t of clipped) {
      for (let i = 0; i < t.length; i++) {
        const v = Math.max(-big.clip, Math.min(big.clip, t[i]!));
        const x = v / big.step;
        const level = q[at++]!;
        expect(level >= Math.floor(x) && level <= Math.floor(x) + 1 && Math.abs(level) <= big.maxLevel, `value ${at - 1}: ${level} for x = ${x}`).toBe(true);
        sumSq += level * level;
      }
    }
    expect(q.slice(1000)).toEqual([0, 0]);
    // The sensitivity the accountant counts (unclipped the norm would be 5/step ≈ 4.7·l2).
    expect(Math.sqrt(sumSq)).toBeLessThan(big.l2);
    expect(big.l2).toBeCloseTo(1 / big.step + Math.sqrt(1000), 9);
  });

  it('adds exactly the Skellam noise its noise rng draws, to every value, trailing slots included', () => {
    // Same rounding seed with and without noise: the difference is the noise alone.
    const input = [f(0.2, -0.4, 0.1), f(0.05, 0.3)]; // tensors of 3 and 2: 5 levels + 2 trailing slots
    const two = distributedDpParams(5, 8, 2, 1);
    const ringBits = 16;
    const variance = 50; // Poisson(25) parts: PTRS, not inversion
    const plain = encode(input, { params: two, clipNorm: 1, ringBits, roundingSeed: 3 });
    const noised = encode(input, { params: two, clipNorm: 1, ringBits, roundingSeed: 3, variance, noiseSeed: 99 });
    const noise = skellamNoise(3 + 2 + 2, variance, createRng(99));
    const difference = Array.from(noised.levels, (u, i) => signed((u - plain.levels[i]! + 2 ** ringBits) % 2 ** ringBits, ringBits));
    expect(difference).toEqual(Array.from(noise));
    expect(noise.some((n) => n !== 0)).toBe(true);
    // Noise comes after the rounding, so the carried residual does not see it.
    expect(noised.residual).toEqual(plain.residual);
  });

  it('writes negative levels as two\'s complement in a 32-bit ring too', () => {
    const { levels } = encode([f(-0.5, 0, 0, 0)], { params, clipNorm: 1, ringBits: 32 });
    // x = −63.5 → −64 or −63, stored as 2³² − 64 or 2³² − 63.
    expect([2 ** 32 - 64, 2 ** 32 - 63]).toContain(levels[0]);
    expect(levels[4]).toBe(0);
  });

  it('refuses a residual of another shape and a value that is not finite', () => {
    expectCode(() => encode([f(0, 0, 0, 0)], { params, clipNorm: 1, ringBits: w, residual: [] }), 'UPDATE_WRONG_LENGTH');
    expectCode(() => encode([f(NaN, 0, 0, 0)], { params, clipNorm: 1, ringBits: w }), 'UPDATE_NOT_FINITE');
    expectCode(() => encode([f(Infinity, 0, 0, 0)], { params, clipNorm: 1, ringBits: w }), 'UPDATE_NOT_FINITE');
  });
});

describe('decoding the unmasked sum', () => {
  it('reads the sum mod 2^w as signed levels × step / denominator, negative totals included', () => {
    // Three devices, lengths [2, 1] (+ 2 trailing noise slots, ignored), w = 10, step = 1/127, denominator 5:
    //   d1 = (−127,   5 | 100 |  3, −4)
    //   d2 = (−127, −20 | 100 | −1,  7)
    //   d3 = (−127,   1 | 100 |  0,  0)
    //   Σ  = (−381, −14 | 300): −381 is 2¹⁰ − 381 = 643 in the ring (≥ 512: negative), −14 is 1010.
    //   × (1/127)/5: (−3/5, −14/635 | 300/635) = (−0.6, −0.0220472 | 0.4724409)
    const w = distributedRingBits(8, 3, 0);
    expect(w).toBe(10);
    const devices = [[-127, 5, 100, 3, -4], [-127, -20, 100, -1, 7], [-127, 1, 100, 0, 0]];
    const ring = (v: number[]) => Uint32Array.from(v, (x) => (x + 1024) % 1024);
    const sum = sumLevels(devices.map(ring), w);
    expect(Array.from(sum.subarray(0, 3))).toEqual([643, 1010, 300]);
    const mean = decodeDistributedSum(sum, { lengths: [2, 1], ringBits: w, step: 1 / 127, denominator: 5 });
    expect(mean).toHaveLength(2);
    expect(mean[0]![0]).toBeCloseTo(-0.6, 6);
    expect(mean[0]![1]).toBeCloseTo(-14 / 635, 6);
    expect(mean[1]![0]).toBeCloseTo(300 / 635, 6);
    // In a 32-bit ring: −5 is 2³² − 5.
    const wide = decodeDistributedSum(Uint32Array.of(2 ** 32 - 5, 7), { lengths: [1], ringBits: 32, step: 0.5, denominator: 2 });
    expect(Array.from(wide[0]!)).toEqual([-1.25]);
  });

  it('refuses a sum of the wrong length and a denominator that is not positive', () => {
    expectCode(() => decodeDistributedSum(new Uint16Array(4), { lengths: [2, 1], ringBits: 10, step: 1, denominator: 1 }), 'UPDATE_WRONG_LENGTH');
    expectCode(() => decodeDistributedSum(new Uint16Array(5), { lengths: [2, 1], ringBits: 10, step: 1, denominator: 0 }), 'INTERNAL');
  });
});

// ---------------------------------------------------------------------------------------
// A secure round under distributed DP

const LENGTHS = [200, 100];
const D = 300;

interface Party {
  id: string;
  client: SecAggClient;
  /** What the device feeds the secure sum: clipped, rounded, noised (as client/round-runner.ts does). */
  input: Uint32Array;
  /** The same input with the noise left out (same rounding draws). */
  noiseless: Uint32Array;
  noiseSeed: number;
}

let nextSession = 0;
function participant(identity: KeyPair, index: number): ClientSession {
  const s = new ClientSession({ id: `client-${index}`, taskId: 1, kind: 'edge', identityKey: identity.publicKey, shard: null, resumeToken: new Uint8Array(32).fill(++nextSession % 256) });
  s.samples = 100 + index; // unequal: distributed DP must weigh every device 1 anyway
  return s;
}

/** Device u's update: seeded, of norm 0.4 + 0.25·u (the later devices' are clipped to C = 1). */
function deviceDelta(u: number): Weights {
  const rng = createRng(deriveSeed('ddp-delta', u));
  const raw = LENGTHS.map((n) => Float32Array.from({ length: n }, () => rng.next() - 0.5));
  const scale = (0.4 + 0.25 * u) / l2Norm(raw);
  return raw.map((t) => t.map((v) => v * scale));
}

/** A task's distributed-DP round of n devices, set up as the server sets it up. */
function setUp(n: number, minUpdates: number) {
  const spec = withTaskDefaults({ name: 'ddp', secure: true, bits: 8, shards: n, clientsPerRound: n, minUpdates, rounds: 1, privacy: { mode: 'distributed', epsilon: 8, clipNorm: 1 } });
  const noise = PrivacyBudget.of(spec, D)!.distributed!;
  const identities = Array.from({ length: n }, () => generateSigningKeyPair());
  const plan: RoundPlan = { round: 1, participants: identities.map(participant), enough: n, budgets: new Map(), targetMs: 0 };
  const config = secureRoundConfig(spec, plan, LENGTHS.map(() => 0.05), Date.now(), noise);
  const context = roundContext(1, 1, generateBoxKeyPair().publicKey);
  const inputLength = secureInputLength(LENGTHS);
  const server = new SecureRound({ config, context, inputLength, phaseMs: 60_000, unmask: (job, sum) => runUnmaskJob(job, sum, expandSeed) });
  const rules = config.input;
  const params = distributedDpParams(D, 8, spec.clipSigma, rules.normBound);
  const parties: Party[] = identities.map((identity, u) => {
    const delta = deviceDelta(u);
    const noiseSeed = deriveSeed('ddp-noise', u);
    const device = (variance: number) => encodeDistributedInput(delta, {
      params,
      clipNorm: rules.normBound,
      variance,
      ringBits: config.ringBits,
      residual: zeros(LENGTHS),
      rng: createRng(deriveSeed('ddp-rounding', u)),
      noiseRng: createRng(noiseSeed), // a CSPRNG on real devices; seeded here to re-draw it
    });
    return { id: `client-${u}`, client: new SecAggClient(config, context, u, identity), input: device(rules.noise!.variance), noiseless: device(0), noiseSeed };
  });
  return { spec, noise, config, params, server, parties, inputLength };
}

type Setup = ReturnType<typeof setUp>;

/**
 * One round between the clients and the server round, messages as the gateway carries them.
 * Devices in `afterShare` vanish before uploading, those in `afterUpload` once uploaded.
 * A client that refuses the survivor list (SECAGG_UNSAFE_VIEW) leaves, as it would.
 */
async function runRound(setup: Setup, afterShare: ReadonlySet<number>, afterUpload: ReadonlySet<number>, refused = new Set<number>()) {
  const { server, parties } = setup;
  const uploads = new Map<number, MaskedUpload>();
  let release!: () => void;
  const uploadsDone = new Promise<void>((resolve) => (release = resolve));
  const outcome = server.run(async () => {
    await uploadsDone;
    for (const [index, upload] of uploads) server.admit(index, upload);
  });
  const gone = (u: number) => server.drop(parties[u]!.id);
  const runs = parties.map(async (party, u) => {
    const { index: _index, ...keys } = party.client.advertise();
    const advertised = await server.advertise(party.id, { taskId: 1, round: 1, ...keys });
    const relaying = server.share(party.id, await party.client.share(unpackAdvertised(advertised)));
    if (afterShare.has(u)) {
      relaying.catch(() => {});
      return gone(u);
    }
    party.client.receive(await relaying);
    uploads.set(u, { masked: party.client.mask(party.input, expandSeed), partnersSignature: party.client.partnersSignature() });
    if (afterUpload.has(u)) return gone(u);
    const survivors = await server.survivorsFor(party.id);
    let signature: Uint8Array;
    try {
      signature = party.client.confirm(survivors);
    } catch (error) {
      if ((error as { code?: string }).code !== 'SECAGG_UNSAFE_VIEW') throw error;
      refused.add(u);
      return gone(u);
    }
    const { confirmations, partners } = await server.confirm(party.id, signature);
    server.reveal(party.id, party.client.reveal(unpackConfirmations(confirmations), unpackConfirmations(partners)));
  });
  const uploaders = parties.length - afterShare.size;
  void (async () => {
    while (uploads.size < uploaders) await new Promise((r) => setTimeout(r, 1));
    release();
  })();
  const settled = Promise.allSettled(runs);
  try {
    const result = await outcome;
    const clientErrors = (await settled).filter((r) => r.status === 'rejected');
    return { ...result, refused, clientErrors };
  } finally {
    await settled;
  }
}

describe('a secure round with distributed DP', () => {
  beforeAll(async () => {
    await cryptoReady();
  });

  it('is configured from the budget: every device weighs 1, clips to C, quantizes with the budget\'s range and adds σ²/L', () => {
    const { config, noise, params, spec } = setUp(8, 5);
    expect(noise.minSurvivors).toBe(5); // L = minUpdates
    expect(config.input).toEqual({ normBound: spec.privacy.clipNorm, noise: { variance: noise.variance / 5, minSurvivors: 5 } });
    expect(config.participants.map((p) => p.samples)).toEqual(Array(8).fill(1));
    // Every tensor's range is the one a device derives from the task (the client refuses any other).
    expect(config.clips).toEqual([params.clip, params.clip]);
    expect(config.ringBits).toBe(distributedRingBits(8, 8, noise.variance / 5));
  });

  it('sums bit-exactly to the survivors\' noised quantized updates, drop-outs after sharing and after upload included', async () => {
    // n = 8, L = 5. Device 6 vanishes after sharing its keys (never uploads: not a survivor);
    // device 7 after uploading (its input is in the sum; the others reveal its self seed).
    const setup = setUp(8, 5);
    const { config, parties, noise, params } = setup;
    const w = config.ringBits;
    const { sum, survivors, forgers, excluded, refused, clientErrors } = await runRound(setup, new Set([6]), new Set([7]));
    expect(clientErrors).toEqual([]);
    expect({ forgers, excluded, refused: [...refused] }).toEqual({ forgers: [], excluded: [], refused: [] });
    expect(survivors).toEqual([0, 1, 2, 3, 4, 5, 7]);
    // The claim: Σ over survivors of their encodeDistributedInput outputs, mod 2^w, exactly.
    expect(sum).toEqual(sumLevels(survivors.map((u) => parties[u]!.input), w));

    // What that sum carries beyond the noiseless levels is exactly the survivors' Skellam draws.
    const noiseless = sumLevels(survivors.map((u) => parties[u]!.noiseless), w);
    const draws = survivors.map((u) => skellamNoise(setup.inputLength, config.input.noise!.variance, createRng(parties[u]!.noiseSeed)));
    const carried = Array.from(sum, (s, i) => signed((s - noiseless[i]! + 2 ** w) % 2 ** w, w));
    expect(carried).toEqual(Array.from({ length: setup.inputLength }, (_, i) => draws.reduce((a, d) => a + d[i]!, 0)));
    // 7 survivors of L = 5 at σ²/5 each: at least the σ² the accountant counts.
    expect(survivors.length * config.input.noise!.variance).toBeGreaterThanOrEqual(noise.variance);

    // Read as the server reads it: signed levels × step over the expected cohort (8).
    const mean = decodeDistributedSum(sum, { lengths: LENGTHS, ringBits: w, step: params.step, denominator: 8 });
    const total = signedAll(sum, w);
    expect(mean[1]![99]).toBeCloseTo((total[299]! * params.step) / 8, 6);
    expect(mean[0]![0]).toBeCloseTo((total[0]! * params.step) / 8, 6);
  });

  it('a client refuses to confirm a survivor list shorter than minSurvivors (SECAGG_UNSAFE_VIEW), and confirms one of that length', async () => {
    // n = 8, L = 7. The quorum is max(t, ⌊8/2⌋ + 1) ≥ 5, so a list of 6 passes the quorum and
    // is refused for its noise alone.
    const setup = setUp(8, 7);
    const { server, parties, config } = setup;
    expect(config.input.noise!.minSurvivors).toBe(7);
    expect(config.threshold).toBeLessThanOrEqual(6);
    void server.run(() => new Promise(() => {})).catch(() => {});
    const advertised = await Promise.all(parties.map((p) => {
      const { index: _index, ...keys } = p.client.advertise();
      return server.advertise(p.id, { taskId: 1, round: 1, ...keys });
    }));
    const boxes = await Promise.all(parties.map((p, u) => p.client.share(unpackAdvertised(advertised[u]!))));
    const relayed = await Promise.all(parties.map((p, u) => server.share(p.id, boxes[u]!)));
    for (const u of [0, 1]) {
      parties[u]!.client.receive(relayed[u]!);
      parties[u]!.client.mask(parties[u]!.input, expandSeed);
    }
    expectCode(() => parties[0]!.client.confirm([0, 1, 2, 3, 4, 5]), 'SECAGG_UNSAFE_VIEW');
    expect(parties[1]!.client.confirm([0, 1, 2, 3, 4, 5, 6])).toHaveLength(64);
  });

  it('ends without a sum when fewer than minSurvivors upload: every survivor refuses, the round fails', async () => {
    // n = 8, L = 7; devices 6 and 7 vanish after sharing: 6 survivors, each refuses the list.
    const setup = setUp(8, 7);
    const refused = new Set<number>();
    await expect(runRound(setup, new Set([6, 7]), new Set(), refused)).rejects.toMatchObject({ code: 'SECAGG_TOO_FEW_SHARES' });
    expect([...refused].sort()).toEqual([0, 1, 2, 3, 4, 5]);
  });
});
