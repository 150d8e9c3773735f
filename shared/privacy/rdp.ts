import { TributaryError } from '../errors.ts';

/**
 * Rényi differential privacy (RDP) arithmetic: pure math, no I/O. A mechanism's RDP is a
 * curve ε(α) over orders α > 1; RDP composes by adding curves, and converts to (ε, δ)-DP
 * at the end, minimising over the orders. Neighbouring datasets differ by adding or
 * removing one record, the relation Poisson sampling amplifies.
 *
 * Everything is in log space: the sums behind sampled mechanisms have terms like
 * e^{α²/2σ²} that overflow a double long before the answer does.
 *
 * (Over 300 lines on purpose: each bound's derivation and its numerical care sit next to
 * the code, since a wrong digit here silently weakens every guarantee the product states.)
 */

/**
 * TF Privacy's orders (compute_dp_sgd_privacy_lib.py): fractional orders where small-ε
 * optima fall, every integer up to 63, then a few large ones for very small budgets.
 */
export const DEFAULT_ORDERS: readonly number[] = Object.freeze([
  1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5,
  ...Array.from({ length: 59 }, (_, i) => i + 5),
  128, 256, 512,
]);

function bad(detail: string): TributaryError {
  return new TributaryError('PRIVACY_INVALID', detail);
}

/** Sums at order α take O(α) terms; past this an order is a mistake, not a budget. */
const MAX_FINITE_ORDER = 1e6;

function checkOrders(orders: readonly number[], integersOnly: boolean): void {
  if (orders.length === 0) throw bad('RDP needs at least one order');
  for (const a of orders) {
    const ok = integersOnly ? Number.isInteger(a) && a >= 2 && a <= MAX_FINITE_ORDER : a > 1 && (a <= MAX_FINITE_ORDER || a === Infinity);
    if (!ok) throw bad(`RDP orders must be ${integersOnly ? 'integers in [2, ' : 'in (1, '}${MAX_FINITE_ORDER}]${integersOnly ? '' : ' or ∞'}, got ${a}`);
  }
}

function checkProbability(name: string, q: number): void {
  if (!(q >= 0 && q <= 1)) throw bad(`${name} must be in [0, 1], got ${q}`);
}

// ---------------------------------------------------------------------------------------
// Log-space helpers

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/** log(e^a + e^b), without overflow. */
function logAddExp(a: number, b: number): number {
  const hi = Math.max(a, b);
  const lo = Math.min(a, b);
  if (lo === -Infinity || hi === Infinity) return hi;
  return hi + Math.log1p(Math.exp(lo - hi));
}

/** log(e^x − 1) for x ≥ 0 (−∞ at 0). */
function logExpm1(x: number): number {
  return x > 36 ? x + Math.log1p(-Math.exp(-x)) : Math.log(Math.expm1(x));
}

/** log(1 + e^x): turns log(A − 1) into log A without losing the digits of a tiny A − 1. */
function log1pExp(x: number): number {
  return x > 36 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

/** erf(x), 0 ≤ x < 2, from erf x = (2/√π) e^{−x²} Σ 2ⁿ x^{2n+1}/(2n+1)!!: all terms positive, no cancellation. */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 0; term > sum * 1e-17; n++) {
    term *= (2 * x2) / (2 * n + 3);
    sum += term;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/**
 * log erfc(x) for x ≥ 2 from the continued fraction
 * erfc x = (2x/√π) e^{−x²} / (2x²+1 − 1·2/(2x²+5 − 3·4/(2x²+9 − …))), by modified Lentz.
 * In log form it stays accurate far past where erfc itself underflows (x ≈ 27).
 */
function logErfcTail(x: number): number {
  const x2 = x * x;
  if (x2 === Infinity) return -Infinity;
  const b0 = 2 * x2 + 1;
  const tiny = 1e-300;
  let f = b0;
  let c = b0;
  let d = 0;
  for (let n = 1; n < 1000; n++) {
    const a = -(2 * n - 1) * (2 * n);
    const b = b0 + 4 * n;
    d = b + a * d;
    d = 1 / (d === 0 ? tiny : d);
    c = b + a / c;
    if (c === 0) c = tiny;
    const step = c * d;
    f *= step;
    if (Math.abs(step - 1) < 1e-16) break;
  }
  return Math.log(TWO_OVER_SQRT_PI * x) - x2 - Math.log(f);
}

/** log erfc(x) for any real x. For x < 0, erfc x = 2 − erfc(−x) lies in (1, 2]. */
function logErfc(x: number): number {
  if (x < 0) {
    const tail = -x < 2 ? 1 - erfSeries(-x) : Math.exp(logErfcTail(-x));
    return Math.LN2 + Math.log1p(-tail / 2);
  }
  return x < 2 ? Math.log1p(-erfSeries(x)) : logErfcTail(x);
}

// ---------------------------------------------------------------------------------------
// The Poisson-sampled Gaussian mechanism (Mironov, Talwar & Zhang 2019, arXiv:1908.10530)

/**
 * RDP of one step of the sampled Gaussian mechanism: each record joins the batch with
 * probability q, and the sum gets N(0, z²) noise per unit of L2 sensitivity. The exact
 * value, not a bound (at fractional orders rounded up by at most ~1e-9 relative):
 * ε(α) = log(A_α)/(α − 1) with A_α = E_{x∼N(0,z²)}[(1 − q + q·e^{(2x−1)/2z²})^α].
 * q = 0 gives 0, q = 1 the plain Gaussian α/2z², z = 0 (with q > 0) Infinity.
 */
export function sampledGaussianRdp(q: number, noiseMultiplier: number, orders: readonly number[] = DEFAULT_ORDERS): number[] {
  checkProbability('the sampling rate q', q);
  if (!(noiseMultiplier >= 0)) throw bad(`the noise multiplier must be ≥ 0, got ${noiseMultiplier}`);
  checkOrders(orders, false);
  return orders.map((alpha) => sampledGaussianRdpAt(q, noiseMultiplier, alpha));
}

function sampledGaussianRdpAt(q: number, sigma: number, alpha: number): number {
  if (q === 0 || sigma === Infinity) return 0;
  if (sigma === 0 || alpha === Infinity) return Infinity;
  if (q === 1) return alpha / (2 * sigma * sigma);
  const logA = Number.isInteger(alpha) ? logAIntegerOrder(q, sigma, alpha) : logAFractionalOrder(q, sigma, alpha);
  // A_α ≥ 1 exactly; rounding may dip a hair below.
  return Math.max(0, logA / (alpha - 1));
}

/**
 * Integer α (MTZ §3.3): A_α = Σ_i C(α,i) q^i (1−q)^{α−i} e^{(i²−i)/2σ²}. The binomial
 * weights sum to 1 and the i = 0, 1 terms have exponent 0, so A_α − 1 is the positive sum
 * Σ_{i≥2} C(α,i) q^i (1−q)^{α−i} (e^{(i²−i)/2σ²} − 1). Summing that, rather than A_α
 * itself, keeps the digits of an RDP of 1e-12.
 */
function logAIntegerOrder(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoSigma2 = 2 * sigma * sigma;
  let logBinom = Math.log((alpha * (alpha - 1)) / 2);
  let logAMinus1 = -Infinity;
  for (let i = 2; i <= alpha; i++) {
    if (i > 2) logBinom += Math.log((alpha - i + 1) / i);
    const term = logBinom + i * logQ + (alpha - i) * log1mQ + logExpm1((i * i - i) / twoSigma2);
    logAMinus1 = logAddExp(logAMinus1, term);
  }
  return log1pExp(logAMinus1);
}

/**
 * Alternating terms (those past i = α + 1) summed before the tail is bounded by its first
 * term instead. When q is large the tail shrinks only like i^{−α−2}: 1000 terms leave an
 * error of ~1e-9 relative (checked against mpmath quadrature), always upward, where
 * summing to 1e-16 would take ~10⁵ terms.
 */
const FRACTIONAL_ALTERNATING_TERMS = 1000;

/**
 * Fractional α (MTZ §3.3): split the integral at z0, where (1−q)·N(0,σ²) and q·N(1,σ²)
 * cross, and expand (a + b)^α as a binomial series on each side, where it converges:
 *   A_α = Σ_i C(α,i) [ q^i (1−q)^{α−i} e^{(i²−i)/2σ²} ½erfc((i−z0)/√2σ)
 *                    + q^{α−i} (1−q)^i e^{(j²−j)/2σ²} ½erfc((z0−j)/√2σ) ],  j = α − i.
 * C(α,i) turns negative and alternates in sign for i > α + 1. We keep the signs: that is
 * the exact value (TF Privacy until 2024, Opacus today); dp_accounting since 2024 sums
 * |C(α,i)|, a valid but looser bound. Summation stops once the terms alternate and shrink
 * and are 37 nats below the sum, or after FRACTIONAL_ALTERNATING_TERMS of them, and adds
 * the last term: an alternating series' remainder is at most its first omitted term, so
 * the result stays an upper bound.
 */
function logAFractionalOrder(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoSigma2 = 2 * sigma * sigma;
  const sqrt2Sigma = Math.SQRT2 * sigma;
  const z0 = sigma * sigma * (log1mQ - logQ) + 0.5;
  let logPos = -Infinity;
  let logNeg = -Infinity;
  let logBinomAbs = 0;
  let negative = false;
  let lastLogTerm = Infinity;
  const maxTerms = Math.ceil(alpha) + FRACTIONAL_ALTERNATING_TERMS;
  for (let i = 0; i < maxTerms; i++) {
    if (i > 0) {
      const ratio = (alpha - i + 1) / i;
      logBinomAbs += Math.log(Math.abs(ratio));
      if (ratio < 0) negative = !negative;
    }
    const j = alpha - i;
    const below = i * logQ + j * log1mQ + (i * i - i) / twoSigma2 + logErfc((i - z0) / sqrt2Sigma);
    const above = j * logQ + i * log1mQ + (j * j - j) / twoSigma2 + logErfc((z0 - j) / sqrt2Sigma);
    const logTerm = logBinomAbs - Math.LN2 + logAddExp(below, above);
    if (negative) logNeg = logAddExp(logNeg, logTerm);
    else logPos = logAddExp(logPos, logTerm);
    const shrinkingAlternation = i > alpha + 1 && logTerm < lastLogTerm;
    const negligible = logTerm < logPos - 37;
    if (shrinkingAlternation && (negligible || i === maxTerms - 1)) return logDifference(logAddExp(logPos, logTerm), logNeg);
    lastLogTerm = logTerm;
  }
  // Still growing after all those terms: no trustworthy value. Infinity drops this order.
  return Infinity;
}

/** log(P − N) from log P and log N; where they nearly cancel, log(P + N), a safe upper bound. */
function logDifference(logPos: number, logNeg: number): number {
  const ratio = Math.exp(logNeg - logPos);
  return ratio < 0.5 ? logPos + Math.log1p(-ratio) : logAddExp(logPos, logNeg);
}

// ---------------------------------------------------------------------------------------
// Poisson subsampling of any mechanism (Zhu & Wang 2019, ICML, "Poisson Subsampled RDP")

/**
 * RDP at integer orders of M∘PoissonSample(q), for any M whose RDP is `baseRdp`. Zhu &
 * Wang's Theorem 6 (general upper bound):
 *   ε'(α) ≤ 1/(α−1) · log[ (1−q)^{α−1}(αq − q + 1) + C(α,2) q² (1−q)^{α−2} e^{ε(2)}
 *                          + 3 Σ_{ℓ=3..α} C(α,ℓ) q^ℓ (1−q)^{α−ℓ} e^{(ℓ−1)ε(ℓ)} ],
 * summed, like the Gaussian's, as 1 + Σ (positive excess) so small values keep their
 * digits. Sampling never hurts, so the result is capped at ε(α). It needs ε at every
 * integer 2..α, hence integer orders only. For the Gaussian it is ≥ sampledGaussianRdp.
 */
export function poissonSubsampledRdp(q: number, baseRdp: (order: number) => number, orders: readonly number[]): number[] {
  checkProbability('the sampling rate q', q);
  checkOrders(orders, true);
  const maxOrder = Math.max(...orders);
  const base = new Float64Array(maxOrder + 1);
  for (let l = 2; l <= maxOrder; l++) {
    const value = baseRdp(l);
    if (!(value >= 0)) throw bad(`a mechanism's RDP must be ≥ 0, got ${value} at order ${l}`);
    base[l] = value;
  }
  return orders.map((alpha) => {
    const plain = base[alpha]!;
    if (q === 0) return 0;
    if (q === 1) return plain;
    const logQ = Math.log(q);
    const log1mQ = Math.log1p(-q);
    let logBinom = Math.log((alpha * (alpha - 1)) / 2);
    let logExcess = logBinom + 2 * logQ + (alpha - 2) * log1mQ + logExpm1(base[2]!);
    for (let l = 3; l <= alpha; l++) {
      logBinom += Math.log((alpha - l + 1) / l);
      const x = (l - 1) * base[l]!;
      // log(3e^x − 1) = x + log(3 − e^{−x})
      logExcess = logAddExp(logExcess, logBinom + l * logQ + (alpha - l) * log1mQ + x + Math.log(3 - Math.exp(-x)));
    }
    return Math.min(plain, log1pExp(logExcess) / (alpha - 1));
  });
}

// ---------------------------------------------------------------------------------------
// The multi-dimensional Skellam mechanism (Agarwal, Kairouz & Liu 2021, NeurIPS, arXiv:2110.04995)

/**
 * RDP of one release of an integer vector query plus independent symmetric Skellam noise
 * of the given VARIANCE per coordinate. The paper writes the noise Sk(μ, μ) = Poisson(μ) −
 * Poisson(μ), whose variance is 2μ, and bounds (its multi-dimensional Skellam RDP theorem)
 *   ε(α) ≤ α Δ2²/(4μ) + min( ((2α−1) Δ2² + 6 Δ1)/(16 μ²), 3 Δ1/(4μ) ).
 * With variance V = 2μ that is the Gaussian's α Δ2²/2V plus a correction that vanishes as
 * V grows; the authors' accounting code (google-research/federated,
 * distributed_dp/accounting_utils.py, `_skellam_rdp`) uses this same form in V.
 * Sensitivities are in the integer domain the noise is added in. An L2 bound above the L1
 * bound is loose (‖x‖₂ ≤ ‖x‖₁), so the L1 bound serves as both then.
 */
export function skellamRdp(l1: number, l2Bound: number, variance: number, orders: readonly number[] = DEFAULT_ORDERS): number[] {
  if (!(l1 > 0 && l1 < Infinity) || !(l2Bound > 0 && l2Bound < Infinity)) {
    throw bad(`Skellam sensitivities must be finite and > 0, got L1 = ${l1}, L2 = ${l2Bound}`);
  }
  if (!(variance > 0)) throw bad(`the Skellam variance must be > 0, got ${variance}`);
  checkOrders(orders, false);
  const l2 = Math.min(l2Bound, l1);
  return orders.map((alpha) => {
    if (variance === Infinity) return 0;
    if (alpha === Infinity) return Infinity;
    const gaussian = (alpha * l2 * l2) / (2 * variance);
    const correction = Math.min(((2 * alpha - 1) * l2 * l2 + 6 * l1) / (4 * variance * variance), (3 * l1) / (2 * variance));
    return gaussian + correction;
  });
}

// ---------------------------------------------------------------------------------------
// Composition and conversion to (ε, δ)

/** One mechanism's per-run RDP curve, run `steps` times. */
export interface RdpTerm {
  rdp: readonly number[];
  steps: number;
}

/** Adaptive composition: RDP curves (at the same orders) add, so `steps` runs multiply. */
export function composeRdp(terms: readonly RdpTerm[]): number[] {
  const length = terms[0]?.rdp.length ?? 0;
  const total = new Array<number>(length).fill(0);
  for (const { rdp, steps } of terms) {
    if (rdp.length !== length) throw bad(`cannot compose RDP curves of ${rdp.length} and ${length} orders`);
    if (!(Number.isInteger(steps) && steps >= 0)) throw bad(`steps must be a whole number ≥ 0, got ${steps}`);
    if (steps === 0) continue; // 0 · Infinity would be NaN
    for (let k = 0; k < length; k++) total[k] = total[k]! + steps * rdp[k]!;
  }
  return total;
}

export interface EpsilonAtOrder {
  epsilon: number;
  /** The order that gave the smallest ε (the first of equals). */
  order: number;
}

export interface DeltaAtOrder {
  delta: number;
  order: number;
}

function checkCurve(orders: readonly number[], rdp: readonly number[]): void {
  checkOrders(orders, false);
  if (orders.length !== rdp.length) throw bad(`${orders.length} orders but ${rdp.length} RDP values`);
  for (const r of rdp) if (!(r >= 0)) throw bad(`RDP values must be ≥ 0, got ${r}`);
}

function checkDelta(delta: number): void {
  if (!(delta > 0 && delta < 1)) throw bad(`δ must be in (0, 1), got ${delta}`);
}

/**
 * (ε, δ)-DP from an RDP curve, as dp_accounting's `compute_epsilon` does it: at each order
 * the conversion of Balle et al. 2020 / Canonne, Kamath & Steinke 2020,
 *   ε = rdp + log((α−1)/α) − (log δ + log α)/(α − 1),
 * which beats Mironov's by about log(α)/(α−1); or ε = 0 when δ ≥ √(1 − e^{−rdp}), since
 * RDP at any order bounds the KL divergence and so the total variation. Orders ≤ 1.01 are
 * skipped (the formula is unstable there and never best). Takes the minimum over orders.
 */
export function epsilonFromRdp(orders: readonly number[], rdp: readonly number[], delta: number): EpsilonAtOrder {
  checkCurve(orders, rdp);
  checkDelta(delta);
  const best = bestOrder(orders, rdp, (alpha, r) => {
    if (delta * delta + Math.expm1(-r) > 0) return 0;
    if (alpha === Infinity) return r;
    if (alpha <= 1.01) return Infinity;
    return r + Math.log1p(-1 / alpha) - Math.log(delta * alpha) / (alpha - 1);
  });
  return { epsilon: Math.max(0, best.value), order: best.order };
}

/**
 * Mironov 2017 (Proposition 3): ε = rdp − log δ/(α − 1). Looser than epsilonFromRdp;
 * kept only to reproduce values published before TF Privacy switched (December 2020).
 */
export function mironovEpsilonFromRdp(orders: readonly number[], rdp: readonly number[], delta: number): EpsilonAtOrder {
  checkCurve(orders, rdp);
  checkDelta(delta);
  const best = bestOrder(orders, rdp, (alpha, r) => (alpha === Infinity ? r : r - Math.log(delta) / (alpha - 1)));
  return { epsilon: best.value, order: best.order };
}

/** The inverse of epsilonFromRdp (dp_accounting's `compute_delta`): the least δ at a given ε. */
export function deltaFromRdp(orders: readonly number[], rdp: readonly number[], epsilon: number): DeltaAtOrder {
  checkCurve(orders, rdp);
  if (!(epsilon >= 0)) throw bad(`ε must be ≥ 0, got ${epsilon}`);
  const best = bestOrder(orders, rdp, (alpha, r) => {
    let logDelta = r === 0 ? -Infinity : 0.5 * Math.log1p(-Math.exp(-r)); // total variation via KL
    if (alpha === Infinity) return r <= epsilon ? -Infinity : logDelta;
    if (alpha > 1.01) logDelta = Math.min(logDelta, (alpha - 1) * (r - epsilon + Math.log1p(-1 / alpha)) - Math.log(alpha));
    return logDelta;
  });
  return { delta: Math.min(1, Math.exp(best.value)), order: best.order };
}

/** The least of `bound` over the curve, and the first order that attains it. */
function bestOrder(
  orders: readonly number[],
  rdp: readonly number[],
  bound: (alpha: number, r: number) => number,
): { value: number; order: number } {
  let best = Infinity;
  let order = orders[0]!;
  for (let k = 0; k < orders.length; k++) {
    const value = bound(orders[k]!, rdp[k]!);
    if (value < best) {
      best = value;
      order = orders[k]!;
    }
  }
  return { value: best, order };
}
