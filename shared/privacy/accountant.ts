import { TributaryError } from '../errors.ts';
import {
  DEFAULT_ORDERS,
  composeRdp,
  deltaFromRdp,
  epsilonFromRdp,
  poissonSubsampledRdp,
  sampledGaussianRdp,
  skellamRdp,
  type DeltaAtOrder,
  type EpsilonAtOrder,
} from './rdp.ts';

/**
 * The privacy budget of a whole task, as the server states and plans it: T rounds, each
 * sampling every client with probability q (Poisson), each adding noise to the clipped sum.
 * All RDP math is in rdp.ts; this file validates, composes over the rounds, converts to
 * (ε, δ) with the tight conversion, and searches for the noise a budget allows.
 * Bad inputs, and budgets no noise can meet, throw PRIVACY_INVALID.
 */

export type { DeltaAtOrder, EpsilonAtOrder } from './rdp.ts';

/** Central DP with Gaussian noise of std noiseMultiplier × the L2 clip bound. */
export interface GaussianTask {
  /** Per-round sampling probability of each client. */
  q: number;
  noiseMultiplier: number;
  /** Rounds (releases), each a fresh sample. */
  steps: number;
  orders?: readonly number[];
}

/** Distributed DP: integer updates with Skellam noise of `variance` per coordinate in the sum. */
export interface SkellamTask {
  q: number;
  /** L1 and L2 sensitivity of one client's integer update (in levels). */
  l1: number;
  l2: number;
  variance: number;
  steps: number;
  /** Only the integer orders ≥ 2 are used: the subsampling bound needs them. */
  orders?: readonly number[];
}

function bad(detail: string): TributaryError {
  return new TributaryError('PRIVACY_INVALID', detail);
}

function checkSampling(q: number, allowZero: boolean): void {
  const ok = allowZero ? q >= 0 && q <= 1 : q > 0 && q <= 1;
  if (!ok) throw bad(`the sampling rate q must be in ${allowZero ? '[0, 1]' : '(0, 1]'}, got ${q}`);
}

function checkSteps(steps: number): void {
  if (!(Number.isSafeInteger(steps) && steps >= 1)) throw bad(`steps must be a whole number ≥ 1, got ${steps}`);
}

function checkDelta(delta: number): void {
  if (!(delta > 0 && delta < 1)) throw bad(`δ must be in (0, 1), got ${delta}`);
}

function checkTargetEpsilon(epsilon: number): void {
  if (!(epsilon > 0 && epsilon < Infinity)) throw bad(`the target ε must be a finite number > 0, got ${epsilon}`);
}

// ---------------------------------------------------------------------------------------
// Gaussian

function gaussianTaskRdp(task: GaussianTask): { orders: readonly number[]; rdp: number[] } {
  checkSampling(task.q, true);
  checkSteps(task.steps);
  if (!(task.noiseMultiplier >= 0 && task.noiseMultiplier < Infinity)) {
    throw bad(`the noise multiplier must be a finite number ≥ 0, got ${task.noiseMultiplier}`);
  }
  const orders = task.orders ?? DEFAULT_ORDERS;
  const perStep = sampledGaussianRdp(task.q, task.noiseMultiplier, orders);
  return { orders, rdp: composeRdp([{ rdp: perStep, steps: task.steps }]) };
}

/** The ε a Gaussian task spends at δ, and the RDP order that gave it. */
export function gaussianEpsilon(task: GaussianTask & { delta: number }): EpsilonAtOrder {
  checkDelta(task.delta);
  const { orders, rdp } = gaussianTaskRdp(task);
  return epsilonFromRdp(orders, rdp, task.delta);
}

/** The δ a Gaussian task spends at ε. */
export function gaussianDelta(task: GaussianTask & { epsilon: number }): DeltaAtOrder {
  if (!(task.epsilon >= 0)) throw bad(`ε must be ≥ 0, got ${task.epsilon}`);
  const { orders, rdp } = gaussianTaskRdp(task);
  return deltaFromRdp(orders, rdp, task.epsilon);
}

/**
 * The least noise multiplier z (to 1e-6 relative, rounded up) whose task spends at most
 * `epsilon` at `delta`. ε falls as z grows, so a bisection finds it.
 */
export function calibrateGaussianNoise(
  task: Omit<GaussianTask, 'noiseMultiplier'> & { delta: number; epsilon: number },
): number {
  checkSampling(task.q, false);
  checkSteps(task.steps);
  checkDelta(task.delta);
  checkTargetEpsilon(task.epsilon);
  return leastPassing((z) => gaussianEpsilon({ ...task, noiseMultiplier: z }).epsilon, task.epsilon, 'noise multiplier');
}

// ---------------------------------------------------------------------------------------
// Skellam

/**
 * The ε a Skellam task spends at δ: per round, the Skellam RDP amplified by Poisson
 * sampling through Zhu & Wang's general bound (no exact sampled-Skellam formula exists).
 */
export function skellamEpsilon(task: SkellamTask & { delta: number }): EpsilonAtOrder {
  checkSampling(task.q, true);
  checkSteps(task.steps);
  checkDelta(task.delta);
  const orders = (task.orders ?? DEFAULT_ORDERS).filter((a) => Number.isInteger(a) && a >= 2);
  if (orders.length === 0) throw bad('the Skellam accountant needs at least one integer order ≥ 2');
  // Validates l1, l2 and the variance before anything is built on them.
  const plain = skellamRdp(task.l1, task.l2, task.variance, orders);
  const perStep =
    task.q === 1
      ? plain
      : poissonSubsampledRdp(task.q, (order) => skellamRdp(task.l1, task.l2, task.variance, [order])[0]!, orders);
  return epsilonFromRdp(orders, composeRdp([{ rdp: perStep, steps: task.steps }]), task.delta);
}

/** The least Skellam variance per coordinate (to 1e-6 relative, rounded up) within budget. */
export function calibrateSkellamVariance(
  task: Omit<SkellamTask, 'variance'> & { delta: number; epsilon: number },
): number {
  checkSampling(task.q, false);
  checkSteps(task.steps);
  checkDelta(task.delta);
  checkTargetEpsilon(task.epsilon);
  skellamRdp(task.l1, task.l2, 1, [2]); // rejects bad sensitivities before the search starts
  return leastPassing((v) => skellamEpsilon({ ...task, variance: v }).epsilon, task.epsilon, 'Skellam variance');
}

// ---------------------------------------------------------------------------------------
// Adaptive clipping (Andrew, Thakkar, McMahan & Ramaswamy 2021, arXiv:1905.03871)

/**
 * Adaptive clipping also releases a noisy count of clipped clients each round (each
 * client's bit has sensitivity ½, so count noise of std σ_b is a Gaussian of multiplier
 * 2σ_b). Two Gaussians on the same sample compose to one of multiplier
 * (z_Δ⁻² + (2σ_b)⁻²)^{−½}. For a target total z, the update noise must therefore be
 *   z_Δ = (z⁻² − (2σ_b)⁻²)^{−½},
 * slightly more than z. If 2σ_b ≤ z the count alone would spend the whole budget.
 * (TensorFlow Federated's adaptive_clip_noise_params uses the same rule.)
 */
export function adaptiveClipNoise(noiseMultiplier: number, countNoiseStd: number): number {
  if (!(noiseMultiplier > 0 && noiseMultiplier < Infinity)) {
    throw bad(`the target noise multiplier must be a finite number > 0, got ${noiseMultiplier}`);
  }
  if (!(countNoiseStd > 0)) throw bad(`the clipped-count noise std must be > 0, got ${countNoiseStd}`);
  const countMultiplier = 2 * countNoiseStd;
  if (countMultiplier <= noiseMultiplier) {
    throw bad(`clipped-count noise std ${countNoiseStd} is too small for noise multiplier ${noiseMultiplier}: it must exceed z/2 = ${noiseMultiplier / 2}`);
  }
  return (noiseMultiplier ** -2 - countMultiplier ** -2) ** -0.5;
}

// ---------------------------------------------------------------------------------------
// Search

const SEARCH_RELATIVE_TOLERANCE = 1e-6;
const SEARCH_MAX = 1e15;
const SEARCH_MIN = 1e-15;

/**
 * The least x > 0 with epsilonAt(x) ≤ target, for epsilonAt non-increasing in x: bracket by
 * doubling and halving, then bisect. Returns the passing end, so the answer is never short.
 */
function leastPassing(epsilonAt: (x: number) => number, target: number, what: string): number {
  let hi = 1;
  while (!(epsilonAt(hi) <= target)) {
    hi *= 2;
    if (hi > SEARCH_MAX) throw bad(`no ${what} up to ${SEARCH_MAX} keeps ε within ${target}`);
  }
  let lo = hi / 2;
  while (epsilonAt(lo) <= target) {
    hi = lo;
    lo /= 2;
    if (lo < SEARCH_MIN) return hi;
  }
  while (hi - lo > SEARCH_RELATIVE_TOLERANCE * hi) {
    const mid = (lo + hi) / 2;
    if (epsilonAt(mid) <= target) hi = mid;
    else lo = mid;
  }
  return hi;
}
