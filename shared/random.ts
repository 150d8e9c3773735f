import { TributaryError } from './errors.ts';

/**
 * Seeded randomness. Everything in shared/ takes an `Rng` instead of calling
 * Math.random so that partitions, client sampling and stochastic rounding replay
 * exactly from a seed, in tests and in experiments.
 */
export interface Rng {
  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number;
  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number;
}

const TWO_POW_32 = 4294967296;

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** xoshiro128** (Blackman & Vigna): small state, fast with 32-bit integer ops, good statistics. */
class Xoshiro128 implements Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    // splitmix32 spreads a possibly tiny or zero seed over all 128 bits of state.
    let sm = seed >>> 0;
    const split = (): number => {
      sm = (sm + 0x9e3779b9) >>> 0;
      let z = sm;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) | 0;
    };
    this.s0 = split();
    this.s1 = split();
    this.s2 = split();
    this.s3 = split();
    // The all-zero state is a fixed point of xoshiro; splitmix makes it all but impossible.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  nextUint32(): number {
    const s1 = this.s1;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  next(): number {
    return this.nextUint32() / TWO_POW_32;
  }
}

/** A deterministic generator; the seed is taken modulo 2^32 (negative and zero seeds are fine). */
export function createRng(seed: number): Rng {
  return new Xoshiro128(seed);
}

/** murmur3's 32-bit finalizer: FNV-1a alone leaves low bits poorly mixed. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Mixes labelled parts (e.g. `deriveSeed('sample', taskSeed, round)`) into one 32-bit
 * seed, so independent uses of one task seed get uncorrelated streams.
 */
export function deriveSeed(...parts: Array<number | string>): number {
  // Tagged and length-prefixed so ('ab', 'c') and ('a', 'bc'), or 1 and '1', never collide.
  const canonical = parts
    .map((p) => (typeof p === 'number' ? `n${String(p)};` : `s${p.length}:${p};`))
    .join('');
  let h = 0x811c9dc5;
  for (let i = 0; i < canonical.length; i++) {
    const c = canonical.charCodeAt(i);
    h = Math.imul(h ^ (c & 0xff), 0x01000193);
    h = Math.imul(h ^ (c >>> 8), 0x01000193);
  }
  return fmix32(h);
}

/** Fisher–Yates; returns `items` for chaining. */
export function shuffleInPlace<T>(items: T[], rng: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    const tmp = items[i] as T;
    items[i] = items[j] as T;
    items[j] = tmp;
  }
  return items;
}

/** Box–Muller, one of the pair (keeping no cached state keeps the Rng the only state). */
export function sampleStandardNormal(rng: Rng): number {
  const u1 = 1 - rng.next(); // (0, 1]: log stays finite
  const u2 = rng.next();
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

function checkShape(shape: number): void {
  if (!(shape > 0) || !Number.isFinite(shape)) {
    throw new TributaryError('INTERNAL', `gamma shape must be positive and finite, got ${shape}`);
  }
}

/** Marsaglia & Tsang (2000) for shape >= 1. */
function gammaAtLeastOne(shape: number, rng: Rng): number {
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = sampleStandardNormal(rng);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = rng.next();
    const x2 = x * x;
    if (u < 1 - 0.0331 * x2 * x2) return d * v;
    if (Math.log(u) < 0.5 * x2 + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Gamma(shape, 1). Shape < 1 uses the boost Gamma(a) = Gamma(a + 1) · U^(1/a). */
export function sampleGamma(shape: number, rng: Rng): number {
  checkShape(shape);
  if (shape >= 1) return gammaAtLeastOne(shape, rng);
  const g = gammaAtLeastOne(shape + 1, rng);
  return g * Math.pow(1 - rng.next(), 1 / shape);
}

/** log Gamma(shape, 1) sample, same draws as sampleGamma; tiny shapes underflow only in linear space. */
function sampleLogGamma(shape: number, rng: Rng): number {
  if (shape >= 1) return Math.log(gammaAtLeastOne(shape, rng));
  const g = gammaAtLeastOne(shape + 1, rng);
  return Math.log(g) + Math.log(1 - rng.next()) / shape;
}

/**
 * Symmetric Dirichlet(alpha) over k categories. Normalised in log space: with alpha
 * around 0.01 every linear-space gamma sample can underflow to 0 and the sum would be
 * 0/0. Components far below the largest may still round to exactly 0.
 */
export function sampleDirichlet(alpha: number, k: number, rng: Rng): number[] {
  checkShape(alpha);
  if (!Number.isInteger(k) || k < 1) {
    throw new TributaryError('INTERNAL', `Dirichlet needs a positive integer k, got ${k}`);
  }
  const out = new Array<number>(k);
  let max = -Infinity;
  for (let i = 0; i < k; i++) {
    const l = sampleLogGamma(alpha, rng);
    out[i] = l;
    if (l > max) max = l;
  }
  let sum = 0;
  for (let i = 0; i < k; i++) {
    const e = Math.exp(out[i]! - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < k; i++) out[i] = out[i]! / sum;
  return out;
}
