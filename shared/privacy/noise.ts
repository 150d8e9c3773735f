import { TributaryError } from '../errors.ts';
import type { Rng } from '../random.ts';

/**
 * Noise samplers for differential privacy: Gaussian noise for float updates, Poisson and
 * symmetric Skellam noise for quantized (integer) updates under distributed DP.
 *
 * Every sampler takes its `Rng`. Production passes `cryptoRng()`; tests pass
 * `createRng(seed)`. A seeded PRNG must never feed real DP noise: whoever learns or
 * guesses the seed can regenerate the noise and subtract it.
 *
 * (Over 300 lines on purpose: PTRS with the corrections that make it exact, and why each
 * is needed, is one unit; split up, its constants would lose their reasons.)
 *
 * Uniforms. Every sampler here builds its uniforms from two `nextUint32()` words (53
 * bits), whatever the Rng's own `next()` gives, so it is exact to double precision with
 * the seeded generator too. The resolution matters for PTRS. Each integer k owns an
 * interval of U, and on a grid of spacing h it receives a whole number of grid points
 * rather than its exact share, off by up to h per k. Computed bucket by bucket, a 2^-32
 * grid costs about √λ·2^-32 of total variation per draw: 2.4e-8 at λ = 1e4 and 2.3e-6 at
 * λ = 1e8. That is paid on every coordinate of a 200,000-coordinate update, and at large
 * λ it is the size of a typical δ. A 2^-53 grid makes it 2^21 times smaller (~1e-12 at
 * λ = 1e8). For the Gaussian it sets how far the tail reaches: with one 32-bit uniform,
 * Box–Muller stops at 6.7σ.
 */

// ---------------------------------------------------------------------------------------
// A CSPRNG as an Rng

/** The slice of Web Crypto used here (shared/ sees neither DOM nor Node types). */
interface RandomValuesSource {
  getRandomValues(array: Uint32Array): Uint32Array;
}

/** 16 KiB per refill: well under getRandomValues' 64 KiB limit, so one call serves 4096 words. */
const CRYPTO_BUFFER_WORDS = 4096;
const TWO_POW_26 = 67108864;
const TWO_POW_MINUS_53 = 1 / 9007199254740992;

class CryptoRng implements Rng {
  private readonly buffer = new Uint32Array(CRYPTO_BUFFER_WORDS);
  private index = CRYPTO_BUFFER_WORDS;

  constructor(private readonly source: RandomValuesSource) {}

  nextUint32(): number {
    if (this.index === CRYPTO_BUFFER_WORDS) {
      this.source.getRandomValues(this.buffer); // called on `source`: browsers throw on a detached call
      this.index = 0;
    }
    return this.buffer[this.index++]!;
  }

  /**
   * 53 bits of resolution (two words). That is more than `Rng` promises, and cheap with the
   * buffer. The samplers below do not depend on it: they build their own 53-bit uniforms
   * (see the top of this file).
   */
  next(): number {
    return uniform53(this);
  }
}

/**
 * An Rng backed by `globalThis.crypto.getRandomValues` (Node ≥ 19 and every browser),
 * buffered 4096 words at a time. This is the only source DP noise may use in production.
 * Throws INTERNAL if the platform has no Web Crypto, rather than falling back to anything weaker.
 */
export function cryptoRng(): Rng {
  const source = (globalThis as { crypto?: Partial<RandomValuesSource> }).crypto;
  if (!source || typeof source.getRandomValues !== 'function') {
    throw new TributaryError('INTERNAL', 'crypto.getRandomValues is not available; DP noise needs a CSPRNG');
  }
  return new CryptoRng(source as RandomValuesSource);
}

/** Uniform in [0, 1) on the 2^-53 grid: 27 high bits of one word, 26 of the next. */
function uniform53(rng: Rng): number {
  const hi = rng.nextUint32() >>> 5;
  const lo = rng.nextUint32() >>> 6;
  return (hi * TWO_POW_26 + lo) * TWO_POW_MINUS_53;
}

function checkParameter(name: string, value: number, max = Number.MAX_VALUE): void {
  // !(value >= 0) also rejects NaN; the bound rejects Infinity.
  if (!(value >= 0) || !(value <= max)) {
    const range = max === Number.MAX_VALUE ? 'finite and ≥ 0' : `in [0, ${max}]`;
    throw new TributaryError('BAD_REQUEST', `${name} must be ${range}, got ${value}`);
  }
}

// ---------------------------------------------------------------------------------------
// Gaussian

/**
 * Adds N(0, std²) to every value, in place. Uses Marsaglia's polar method, which gives two
 * normals per accepted pair of uniforms (acceptance π/4) with one log and one sqrt and no
 * trigonometry. With 53-bit uniforms it runs about as fast as shared/random.ts's Box–Muller,
 * which spends a log and a cos on every normal and uses 32-bit uniforms.
 *
 * Caveat: this is floating-point noise. A Float32Array rounds value + noise to float32,
 * and floating-point Gaussian (like Laplace, Mironov 2012) can leak through its rounding
 * pattern. Where the guarantee must hold exactly, quantize and use Skellam noise instead.
 */
export function addGaussianNoise(values: Float32Array | Float64Array, std: number, rng: Rng): void {
  checkParameter('std', std);
  if (std === 0) return;
  const n = values.length;
  for (let i = 0; i < n; i += 2) {
    let x: number;
    let y: number;
    let s: number;
    do {
      x = 2 * uniform53(rng) - 1;
      y = 2 * uniform53(rng) - 1;
      s = x * x + y * y;
    } while (s >= 1 || s === 0);
    const f = std * Math.sqrt((-2 * Math.log(s)) / s);
    values[i] = values[i]! + x * f;
    if (i + 1 < n) values[i + 1] = values[i + 1]! + y * f;
  }
}

// ---------------------------------------------------------------------------------------
// Poisson

/**
 * Largest λ accepted. The sampler's own floating-point error (in total variation, per
 * draw) grows like 2^-53·√λ, which is ~1e-11 here. Skellam noise of variance 2·MAX still
 * fits an Int32Array with room to spare.
 */
export const MAX_POISSON_LAMBDA = 1e10;

/** Hörmann published PTRS for λ ≥ 10. Below that, inversion takes about λ + 1 steps. */
const PTRS_MIN_LAMBDA = 10;

/** log k! for k below the table size, by summation (error ~1e-13, far below what matters). */
const LOG_FACTORIAL = new Float64Array(256);
for (let k = 2; k < LOG_FACTORIAL.length; k++) LOG_FACTORIAL[k] = LOG_FACTORIAL[k - 1]! + Math.log(k);

const HALF_LOG_TWO_PI = 0.5 * Math.log(2 * Math.PI);

/**
 * log k! − (k log k − k + ½ log 2πk), by Stirling's series. For k ≥ 256 the first omitted
 * term, 1/(1680 k^7), is below 1e-20.
 */
function stirlingCorrection(k: number): number {
  const kk = k * k;
  return (1 / 12 - (1 / 360 - 1 / (1260 * kk)) / kk) / k;
}

/**
 * log(e^-λ λ^k / k!). For large k the direct form k log λ − λ − log k! subtracts numbers near
 * k log k (~2e9 at λ = 1e8) to reach a result near −10, so it is good only to ~1e-7. The
 * deviance form −k·(t − log1p t), with t = (λ − k)/k, is accurate to ~2^-53·√λ (Loader's
 * approach in R's dpois).
 */
function logPoissonPmf(k: number, lambda: number, logLambda: number): number {
  if (k < LOG_FACTORIAL.length) return k * logLambda - lambda - LOG_FACTORIAL[k]!;
  const t = (lambda - k) / k;
  return -k * (t - Math.log1p(t)) - HALF_LOG_TWO_PI - 0.5 * Math.log(k) - stirlingCorrection(k);
}

/**
 * Sequential search: the smallest k with U < F(k). It stops once the current term is below
 * 2^-64. By then k > 2λ, so later terms at least halve each step and the whole remaining
 * tail is below 2^-63, smaller than the rounding already in u.
 */
function poissonByInversion(lambda: number, expNegLambda: number, rng: Rng): number {
  let u = uniform53(rng);
  let p = expNegLambda;
  let k = 0;
  while (u >= p && p > 5.421010862427522e-20) {
    u -= p;
    k++;
    p *= lambda / k;
  }
  return k;
}

/**
 * Safety factors on Hörmann's constants. We checked the published PTRS exactly: within one
 * k's bucket of U the acceptance bound g(U) = pmf(k)·(a/us² + b)/α is monotone in |U|, so
 * its extremes are at the bucket edges, which solve a quadratic. Over λ ∈ [10, 1e10]
 * (113,528 values, every 0.001 up to λ = 100) that check finds two flaws:
 * - the hat falls below the target for 10 ≤ λ ≲ 1600 (g up to 1.0058, near λ = 14), so
 *   PTRS under-samples near k ≈ λ + 2√λ;
 * - the quick-accept squeeze v_r sits above g near λ = 27 (g/v_r down to 0.9937), so
 *   PTRS over-samples there.
 * Integrated bucket by bucket, the flaws cost up to 7.5e-7 of total variation per draw
 * (λ ≈ 14), about 1e-7 at λ = 100 and under 1e-10 from λ ≈ 1000. That is small, but it
 * is not exact. Scaling α by HAT_SCALE and v_r by SQUEEZE_SCALE / HAT_SCALE restores both
 * conditions with margin: g ≤ 0.996 and g/v_r ≥ 1.003. The rejection squeeze (g ≤ us
 * where us < 0.013) held with g/us ≤ 0.65 and still does. The cost is about 1% more
 * iterations.
 */
const HAT_SCALE = 1.01;
const SQUEEZE_SCALE = 0.99;

/** Per-λ constants of PTRS, named as in Hörmann (1993) (α and v_r scaled as above). */
interface Ptrs {
  lambda: number;
  logLambda: number;
  a: number;
  b: number;
  twoA: number;
  vr: number;
  /** log α, where step 3 compares log(V·α/(a/us² + b)) with the log pmf. */
  logAlpha: number;
  /**
   * λ + 0.43 split into an integer part and a fraction. k = whole + ⌊(2a/us + b)·U +
   * fraction⌋ keeps the fine bits of the small term. Adding it to λ first would round the
   * bucket edges to ulp(λ), which is 1.5e-8 at λ = 1e8.
   */
  whole: number;
  fraction: number;
}

function ptrsConstants(lambda: number): Ptrs {
  const b = 0.931 + 2.53 * Math.sqrt(lambda);
  const a = -0.059 + 0.02483 * b;
  const offset = lambda + 0.43;
  const whole = Math.floor(offset);
  return {
    lambda,
    logLambda: Math.log(lambda),
    a,
    b,
    twoA: 2 * a,
    vr: (SQUEEZE_SCALE / HAT_SCALE) * (0.9277 - 3.6224 / (b - 2)),
    logAlpha: Math.log(HAT_SCALE * (1.1239 + 1.1328 / (b - 3.4))),
    whole,
    fraction: offset - whole,
  };
}

/**
 * Hörmann's PTRS: transformed rejection with squeeze. k = ⌊F(U)⌋, and F has derivative
 * a/us² + b, so the hat it induces puts mass exactly 1 on each integer's bucket. Accepting
 * with probability pmf(k)·(a/us² + b)/α therefore yields exactly Poisson(λ), provided that
 * this probability never exceeds 1 and that the squeezes only decide points on the correct
 * side of it (see HAT_SCALE). The squeeze (us ≥ 0.07, V ≤ v_r) decides most draws without
 * a logarithm. Measured: 1.34 iterations per draw at λ = 10, falling to 1.14 from λ ≈ 1e4 on.
 */
function poissonPtrs(c: Ptrs, rng: Rng): number {
  for (;;) {
    const u = uniform53(rng) - 0.5;
    const v = uniform53(rng);
    const us = 0.5 - Math.abs(u);
    // us = 0 (u = −0.5) gives k = −Infinity, which is rejected below. For λ ≥ 10, k ≥ 0 wherever us ≥ 0.07.
    const k = c.whole + Math.floor((c.twoA / us + c.b) * u + c.fraction);
    if (us >= 0.07 && v <= c.vr) return k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    // log(0) = −Infinity when v = 0 accepts, as it should.
    if (Math.log(v) + c.logAlpha - Math.log(c.a / (us * us) + c.b) <= logPoissonPmf(k, c.lambda, c.logLambda)) {
      return k;
    }
  }
}

/** A reusable Poisson(λ) draw with its per-λ constants computed once (λ already checked). */
function poissonDraw(lambda: number): (rng: Rng) => number {
  if (lambda === 0) return () => 0;
  if (lambda < PTRS_MIN_LAMBDA) {
    const expNegLambda = Math.exp(-lambda);
    return (rng) => poissonByInversion(lambda, expNegLambda, rng);
  }
  const c = ptrsConstants(lambda);
  return (rng) => poissonPtrs(c, rng);
}

/**
 * One exact Poisson(λ) draw, for 0 ≤ λ ≤ MAX_POISSON_LAMBDA. Below λ = 10 it uses
 * inversion; from λ = 10 on it uses PTRS (Hörmann 1993, with the safety factors above).
 * Both are exact methods, never a normal approximation. Throws BAD_REQUEST for a
 * negative, NaN, infinite or too large λ.
 *
 * Running time depends on the draw: inversion takes k steps, and PTRS rejects a variable
 * number of times. Anyone who can time a single draw learns something about it.
 */
export function samplePoisson(lambda: number, rng: Rng): number {
  checkParameter('lambda', lambda, MAX_POISSON_LAMBDA);
  return poissonDraw(lambda)(rng);
}

// ---------------------------------------------------------------------------------------
// Skellam

/**
 * Adds symmetric Skellam noise of the given variance to every level, in place:
 * X = P1 − P2 with P1, P2 independent Poisson(variance / 2), so E X = 0 and Var X = variance.
 *
 * Why distributed DP uses it: Skellam is closed under addition. The sum of independent
 * Skellams of variances v_i is Skellam of variance Σ v_i, because the Poisson parts add.
 * So if n devices each add variance σ²/n before secure aggregation, the server's sum
 * carries exactly Skellam(σ²), the noise a single trusted curator would have added. No
 * device's share alone has to be enough, and the noise stays an integer in the ring.
 * Continuous Gaussians do not fit the ring. Rounded or discrete Gaussians are closed under
 * addition only approximately, which is why the Skellam mechanism (Agarwal, Kairouz & Liu,
 * NeurIPS 2021) uses this noise.
 *
 * Int32Array stores wrap mod 2^32. That is exact arithmetic in a 2^32 ring (and in any 2^w
 * ring once masked). A caller outside a ring must leave headroom. A Uint32Array ring
 * vector can be passed as `new Int32Array(v.buffer, v.byteOffset, v.length)`.
 * Throws BAD_REQUEST for a negative, NaN, infinite or too large variance.
 */
export function addSkellamNoise(levels: Int32Array, variance: number, rng: Rng): void {
  checkParameter('variance', variance, 2 * MAX_POISSON_LAMBDA);
  if (variance === 0) return;
  const draw = poissonDraw(variance / 2);
  for (let i = 0; i < levels.length; i++) {
    const p1 = draw(rng);
    const p2 = draw(rng);
    levels[i] = (levels[i]! + p1 - p2) | 0;
  }
}

/** `length` independent symmetric Skellam draws of the given variance (see addSkellamNoise). */
export function skellamNoise(length: number, variance: number, rng: Rng): Int32Array {
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new TributaryError('BAD_REQUEST', `length must be a non-negative integer, got ${length}`);
  }
  checkParameter('variance', variance, 2 * MAX_POISSON_LAMBDA);
  const out = new Int32Array(length);
  addSkellamNoise(out, variance, rng);
  return out;
}
