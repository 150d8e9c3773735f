import type { LabelledSet } from '../data/dataset.ts';
import { TributaryError } from '../errors.ts';
import { sampleStandardNormal, type Rng } from '../random.ts';
import type { Weights } from './aggregate.ts';

/**
 * Simulated Byzantine clients: what malicious participants upload in place of an honest
 * update, for benchmarks and demos of the robust combine rules. Pure functions over deltas
 * (trained weights − global), randomness injected. An attacker first trains honestly (for
 * label-flip: on flipped labels), then `craftUpdates` turns the attackers' benign deltas
 * into what they send.
 */

export const ATTACKS = ['sign-flip', 'scale', 'gaussian', 'label-flip', 'alie'] as const;
export type AttackName = (typeof ATTACKS)[number];

/**
 * The sign-flip attack's factor: −4·Δ, as in RSA (Li et al. 2019). A bare −Δ from 4 of 20
 * clients only shortens FedAvg's step to 0.6 of itself (measured: −0.46 pp after 20 rounds),
 * which shows nothing; at −4 the attackers cancel the honest majority's step.
 */
export const SIGN_FLIP_FACTOR = 4;

/** The scale attack's boost: 4 boosted clients of 20 make the mean about (16 + 40)/20 = 2.8 honest steps long. */
export const SCALE_FACTOR = 10;

/**
 * The Gaussian attack's σ as a multiple of the attacker's honest update RMS: relative rather
 * than fixed, so it keeps its size as updates shrink or learning rates change. 100× gives
 * σ ≈ 0.25 in the robustness bench, where honest updates have RMS ≈ 0.0025 and the weights
 * ≈ 0.05: the loud, non-omniscient attacker of the literature (Blanchard et al. 2017 draw
 * σ = 200). Noise in random directions barely moves the loss of a 200k-parameter MLP,
 * though: there, 4 of 20 such clients cost FedAvg 0.2 pp at 10× and 1.1 pp at 100×.
 */
export const GAUSSIAN_RMS_FACTOR = 100;

/** Sign-flip, scale and Gaussian are model poisoning; label-flip poisons the data; ALIE is a colluding statistical attack. */
export const ATTACK_DESCRIPTIONS: Record<AttackName, string> = {
  'sign-flip': `sends −${SIGN_FLIP_FACTOR}·Δ, its honest update negated and boosted`,
  scale: `sends ${SCALE_FACTOR}·Δ, its honest update boosted`,
  gaussian: `sends N(0, σ²) noise per coordinate, σ = ${GAUSSIAN_RMS_FACTOR} × its honest update’s RMS`,
  'label-flip': 'trains honestly on labels flipped to classes − 1 − label',
  alie: 'A Little Is Enough: the colluders send μ − z_max·σ of their own benign updates',
};

export interface ByzantineSpec {
  /** Fraction of each round's clients that attack, 0 < fraction < 1. */
  fraction: number;
  attack: AttackName;
}

/** A plain decimal number (no hex, Infinity or whitespace, which Number() would accept). */
const DECIMAL = /^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function isAttack(name: string): name is AttackName {
  return (ATTACKS as readonly string[]).includes(name);
}

/** The demo flag's form, `<fraction>:<attack>`, e.g. `0.2:alie`. */
export function parseByzantine(text: string): ByzantineSpec {
  const trimmed = text.trim();
  const colon = trimmed.indexOf(':');
  if (colon < 0) throw new TributaryError('BAD_REQUEST', `byzantine clients must be given as <fraction>:<attack>, e.g. 0.2:alie; got "${text}"`);
  const raw = trimmed.slice(0, colon);
  const attack = trimmed.slice(colon + 1);
  const fraction = Number(raw);
  if (!DECIMAL.test(raw) || !(fraction > 0 && fraction < 1)) {
    throw new TributaryError('BAD_REQUEST', `byzantine fraction must be a number between 0 and 1 (exclusive), got "${raw}"`);
  }
  if (!isAttack(attack)) throw new TributaryError('BAD_REQUEST', `unknown attack "${attack}": use ${ATTACKS.join(', ')}`);
  return { fraction, attack };
}

/** How many of `clients` attack at `fraction`, to the nearest client (0.2 of 20 is 4). */
export function attackerCount(fraction: number, clients: number): number {
  return Math.round(fraction * clients);
}

/** −SIGN_FLIP_FACTOR · Δ. */
export function signFlip(delta: Weights, factor = SIGN_FLIP_FACTOR): Weights {
  return delta.map((t) => t.map((v) => -factor * v));
}

/** factor · Δ. */
export function scaleUpdate(delta: Weights, factor = SCALE_FACTOR): Weights {
  return delta.map((t) => t.map((v) => v * factor));
}

/** Root mean square over every coordinate of every tensor; 0 for no coordinates. */
export function rms(w: Weights): number {
  let sum = 0;
  let count = 0;
  for (const t of w) {
    for (let i = 0; i < t.length; i++) sum += t[i]! * t[i]!;
    count += t.length;
  }
  return count === 0 ? 0 : Math.sqrt(sum / count);
}

/** Pure noise shaped like `honest`: N(0, σ²) per coordinate, σ = factor · rms(honest). */
export function gaussianUpdate(honest: Weights, rng: Rng, factor = GAUSSIAN_RMS_FACTOR): Weights {
  const sigma = factor * rms(honest);
  return honest.map((t) => {
    const out = new Float32Array(t.length);
    for (let i = 0; i < out.length; i++) out[i] = sigma * sampleStandardNormal(rng);
    return out;
  });
}

/** The label-flip attack's relabelling (Fang et al. 2020): class l becomes classes − 1 − l. */
export function flipLabel(label: number, classes: number): number {
  if (!Number.isInteger(label) || label < 0 || label >= classes) {
    throw new TributaryError('BAD_REQUEST', `label ${label} is outside 0..${classes - 1}`);
  }
  return classes - 1 - label;
}

/** `set` with every label flipped; the pixels are shared with `set`, not copied (nothing writes them). */
export function flipLabels(set: LabelledSet, classes: number): LabelledSet {
  return { ...set, y: set.y.map((l) => flipLabel(l, classes)) };
}

/**
 * Wichura's AS241 (PPND16, 1988): Φ⁻¹(p), the standard normal quantile, to about 1e-16
 * relative error. ±Infinity at 0 and 1.
 */
export function normalQuantile(p: number): number {
  if (!(p >= 0 && p <= 1)) throw new TributaryError('BAD_REQUEST', `a probability must be in [0, 1], got ${p}`);
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  const q = p - 0.5;
  if (Math.abs(q) <= 0.425) {
    const r = 0.180625 - q * q;
    return (q * poly(r, CENTRAL_NUM)) / poly(r, CENTRAL_DEN);
  }
  let r = Math.sqrt(-Math.log(q < 0 ? p : 1 - p));
  let value: number;
  if (r <= 5) {
    r -= 1.6;
    value = poly(r, NEAR_NUM) / poly(r, NEAR_DEN);
  } else {
    r -= 5;
    value = poly(r, FAR_NUM) / poly(r, FAR_DEN);
  }
  return q < 0 ? -value : value;
}

/** c₀ + c₁x + … + c₇x⁷, by Horner's rule. */
function poly(x: number, c: readonly number[]): number {
  let acc = 0;
  for (let i = c.length - 1; i >= 0; i--) acc = acc * x + c[i]!;
  return acc;
}

// AS241's coefficients, lowest order first: |q| ≤ 0.425, then r = √(−ln min(p, 1 − p)) ≤ 5, then beyond.
const CENTRAL_NUM = [
  3.387132872796366608, 133.14166789178437745, 1971.5909503065514427, 13731.693765509461125, 45921.953931549871457, 67265.770927008700853,
  33430.575583588128105, 2509.0809287301226727,
];
const CENTRAL_DEN = [
  1, 42.313330701600911252, 687.1870074920579083, 5394.1960214247511077, 21213.794301586595867, 39307.89580009271061, 28729.085735721942674,
  5226.495278852545925,
];
const NEAR_NUM = [
  1.42343711074968357734, 4.6303378461565452959, 5.7694972214606914055, 3.64784832476320460504, 1.27045825245236838258, 0.24178072517745061177,
  0.0227238449892691845833, 7.7454501427834140764e-4,
];
const NEAR_DEN = [
  1, 2.05319162663775882187, 1.6763848301838038494, 0.68976733498510000455, 0.14810397642748007459, 0.0151986665636164571966,
  5.475938084995344946e-4, 1.05075007164441684324e-9,
];
const FAR_NUM = [
  6.6579046435011037772, 5.4637849111641143699, 1.7848265399172913358, 0.29656057182850489123, 0.026532189526576123093, 0.0012426609473880784386,
  2.71155556874348757815e-5, 2.01033439929228813265e-7,
];
const FAR_DEN = [
  1, 0.59983220655588793769, 0.13692988092273580531, 0.0148753612908506148525, 7.868691311456132591e-4, 1.8463183175100546818e-5,
  1.4215117583164458887e-7, 2.04426310338993978564e-15,
];

/**
 * ALIE's z_max (Baruch, Baruch & Goldberg 2019, §3): with n clients of which f collude,
 * s = ⌊n/2 + 1⌋ − f honest clients must be "won over" for a majority, and the largest
 * shift still inside their spread is z_max = Φ⁻¹((n − s)/n) standard deviations.
 */
export function alieZMax(n: number, f: number): number {
  if (!Number.isInteger(n) || !Number.isInteger(f) || f < 1 || f >= n) {
    throw new TributaryError('BAD_REQUEST', `ALIE needs whole numbers 1 ≤ f < n of attackers among clients, got f = ${f}, n = ${n}`);
  }
  const s = Math.floor(n / 2 + 1) - f;
  if (s < 1 || s >= n) throw new TributaryError('BAD_REQUEST', `ALIE with f = ${f} of n = ${n}: s = ⌊n/2 + 1⌋ − f = ${s} must be in 1..n − 1`);
  return normalQuantile((n - s) / n);
}

/**
 * ALIE's update: per coordinate μ − z_max·σ, the mean and (sample, n − 1) standard deviation
 * over `benign`, the benign updates the attackers know. In Tributary's benchmark the
 * attackers collude without seeing honest clients' updates: each trains honestly and they
 * pool their own benign updates, a weaker (non-omniscient) and more realistic attacker than
 * the paper's, which estimates μ and σ from all benign updates.
 */
export function alieUpdate(benign: readonly Weights[], zMax: number): Weights {
  const m = benign.length;
  const first = benign[0];
  if (first === undefined || m < 2) throw new TributaryError('BAD_REQUEST', `ALIE estimates σ from at least 2 benign updates, got ${m}`);
  for (const b of benign) {
    if (b.length !== first.length || b.some((t, i) => t.length !== first[i]!.length)) {
      throw new TributaryError('BAD_REQUEST', 'ALIE: benign updates differ in shape');
    }
  }
  return first.map((_, t) => {
    const n = first[t]!.length;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (const b of benign) sum += b[t]![i]!;
      const mean = sum / m;
      let squares = 0;
      for (const b of benign) squares += (b[t]![i]! - mean) ** 2;
      out[i] = mean - zMax * Math.sqrt(squares / (m - 1));
    }
    return out;
  });
}

export interface AttackContext {
  /** Clients in the round, attackers included: ALIE's n. */
  clients: number;
  /** The Gaussian attack's noise. */
  rng: Rng;
}

/**
 * What the attackers upload, one per attacker, from the benign deltas each trained (for
 * label-flip they trained on flipped labels, so their deltas go out unchanged). ALIE's
 * colluders all send the same update.
 */
export function craftUpdates(attack: AttackName, benign: readonly Weights[], context: AttackContext): Weights[] {
  switch (attack) {
    case 'sign-flip':
      return benign.map((d) => signFlip(d));
    case 'scale':
      return benign.map((d) => scaleUpdate(d));
    case 'gaussian':
      return benign.map((d) => gaussianUpdate(d, context.rng));
    case 'label-flip':
      return [...benign];
    case 'alie': {
      if (benign.length === 0) return [];
      const update = alieUpdate(benign, alieZMax(context.clients, benign.length));
      return benign.map(() => update);
    }
  }
}
