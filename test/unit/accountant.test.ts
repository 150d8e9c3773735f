import { describe, expect, it } from 'vitest';
import { TributaryError } from '../../shared/errors.ts';
import {
  adaptiveClipNoise,
  calibrateGaussianNoise,
  calibrateSkellamVariance,
  gaussianDelta,
  gaussianEpsilon,
  skellamEpsilon,
} from '../../shared/privacy/accountant.ts';
import {
  DEFAULT_ORDERS,
  composeRdp,
  deltaFromRdp,
  epsilonFromRdp,
  mironovEpsilonFromRdp,
  poissonSubsampledRdp,
  sampledGaussianRdp,
  skellamRdp,
} from '../../shared/privacy/rdp.ts';

/*
 * Expected values are the ones published by TF Privacy, Google's dp_accounting and Opacus,
 * each cited by repository, commit, file and line. Three eras matter:
 *  - before Dec 2020 TF Privacy converted RDP to (ε, δ) with Mironov's bound
 *    (mironovEpsilonFromRdp); its README and tutorial figures are from then;
 *  - from Dec 2020 the tight conversion (epsilonFromRdp);
 *  - from Apr 2024 (dp_accounting 0b109e9, TF Privacy 8b3d8e1) fractional orders sum
 *    |C(α,i)|, an upper bound a little above the exact value. We compute the exact value,
 *    so we match the pre-2024 numbers and sit at or below the current ones.
 */

// Commits cited below: TF Privacy 03035d5 (current), 3deaae3 (parent of 8b3d8e1, before the
// 2024 change), 8d53d8c (parent of be8175b, before the Dec 2020 conversion), db292fc (the
// last version of rdp_accountant_test.py); dp_accounting b5b0286; Opacus 4d0ebc8.

/** Orders of TF Privacy's 2019 MNIST tutorial and of Opacus's RDPAccountant.DEFAULT_ALPHAS. */
const TUTORIAL_ORDERS = [...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10), ...Array.from({ length: 52 }, (_, i) => i + 12)];
/** dp_accounting's DEFAULT_RDP_ORDERS (rdp_privacy_accountant.py). */
const DP_ACCOUNTING_ORDERS = [
  ...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10),
  ...Array.from({ length: 53 }, (_, i) => i + 11),
  128, 256, 512, 1024,
];
const range = (from: number, toExclusive: number): number[] => Array.from({ length: toExclusive - from }, (_, i) => from + i);

function rdpOf(q: number, z: number, steps: number, orders: readonly number[]): number[] {
  return composeRdp([{ rdp: sampledGaussianRdp(q, z, orders), steps }]);
}

/** Python's assertAlmostEqual(a, b, places). */
function expectPlaces(actual: number, expected: number, places: number): void {
  expect(Math.abs(actual - expected)).toBeLessThan(0.5 * 10 ** -places);
}

function expectRelative(actual: number, expected: number, rtol: number, atol = 0): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(atol + rtol * Math.abs(expected));
}

function expectBadRequest(run: () => unknown): void {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(TributaryError);
  expect((thrown as TributaryError).code).toBe('PRIVACY_INVALID');
}

function logAddExp(a: number, b: number): number {
  const hi = Math.max(a, b);
  const lo = Math.min(a, b);
  return lo === -Infinity ? hi : hi + Math.log1p(Math.exp(lo - hi));
}

/**
 * log A_α = log E_{x∼N(0,σ²)}[(1 − q + q e^{(2x−1)/2σ²})^α] by the trapezoid rule in log
 * space, an independent check on the series (as dp_accounting's test_compute_log_a_equals_mp
 * checks it with mpmath). The integrand is smooth and Gaussian-tailed, so a step of σ/20 is
 * accurate to rounding; it peaks near 0 and near α.
 */
function logAByQuadrature(q: number, sigma: number, alpha: number): number {
  const h = sigma / 20;
  const lo = Math.min(0, alpha) - 40 * sigma;
  const hi = Math.max(1, alpha) + 40 * sigma;
  let sum = -Infinity;
  for (let x = lo; x <= hi; x += h) {
    const logDensity = -(x * x) / (2 * sigma * sigma) - Math.log(sigma * Math.sqrt(2 * Math.PI));
    const logRatio = logAddExp(Math.log1p(-q), Math.log(q) + (2 * x - 1) / (2 * sigma * sigma));
    sum = logAddExp(sum, logDensity + alpha * logRatio);
  }
  return sum + Math.log(h);
}

/** D_α(Sk + shift ‖ Sk) for Sk = Poisson(μ) − Poisson(μ), summed exactly from the pmf. */
function shiftedSkellamRenyi(mu: number, shift: number, alpha: number): number {
  const support = 300;
  const terms = support + shift + 400;
  const logFactorial = [0];
  for (let n = 1; n <= 2 * terms; n++) logFactorial.push(logFactorial[n - 1]! + Math.log(n));
  const logPoisson = (n: number): number => n * Math.log(mu) - mu - logFactorial[n]!;
  const logPmf = new Map<number, number>();
  for (let k = 0; k <= support + shift; k++) {
    let s = -Infinity;
    for (let j = 0; j <= terms; j++) s = logAddExp(s, logPoisson(j + k) + logPoisson(j));
    logPmf.set(k, s);
    logPmf.set(-k, s);
  }
  let sum = -Infinity;
  for (let k = -support; k <= support; k++) sum = logAddExp(sum, alpha * logPmf.get(k - shift)! + (1 - alpha) * logPmf.get(k)!);
  return sum / (alpha - 1);
}

// ---------------------------------------------------------------------------------------

describe('sampledGaussianRdp', () => {
  it('is 0 without sampling and α/2z² without subsampling', () => {
    // TF Privacy rdp_accountant_test.py test_compute_rdp_no_data / _no_sampling /
    // _heterogeneous_..._different_sampling_probabilities, https://github.com/tensorflow/privacy/blob/db292fc5d8dbf28b692137b85e5b3f922062ea43/tensorflow_privacy/privacy/analysis/rdp_accountant_test.py#L80-L96
    expect(sampledGaussianRdp(0, 10, [20])).toEqual([0]);
    expect(sampledGaussianRdp(1, 10, [20])).toEqual([0.1]);
    const heterogeneous = composeRdp([
      { rdp: sampledGaussianRdp(0, 10, [20]), steps: 1 },
      { rdp: sampledGaussianRdp(1, 10, [20]), steps: 1 },
    ]);
    expect(heterogeneous).toEqual([0.1]);
  });

  it('is infinite without noise, and at order ∞', () => {
    expect(sampledGaussianRdp(0.01, 0, [2, 2.5])).toEqual([Infinity, Infinity]);
    expect(sampledGaussianRdp(0.01, 1, [Infinity])).toEqual([Infinity]);
    expect(sampledGaussianRdp(0, 0, [2])).toEqual([0]);
  });

  it("matches TF Privacy's test_compute_rdp_scalar", () => {
    // compute_rdp(0.1, 2, 10, 5) ≈ 0.07737, places=5: https://github.com/tensorflow/privacy/blob/db292fc5d8dbf28b692137b85e5b3f922062ea43/tensorflow_privacy/privacy/analysis/rdp_accountant_test.py#L98-L100
    expectPlaces(rdpOf(0.1, 2, 10, [5])[0]!, 0.07737, 5);
  });

  it("matches TF Privacy's test_compute_rdp_sequence, fractional orders included", () => {
    // compute_rdp(0.01, 2.5, 50, ...), rtol=1e-4: https://github.com/tensorflow/privacy/blob/db292fc5d8dbf28b692137b85e5b3f922062ea43/tensorflow_privacy/privacy/analysis/rdp_accountant_test.py#L112-L118
    const rdp = rdpOf(0.01, 2.5, 50, [1.5, 2.5, 5, 50, 100, Infinity]);
    const expected = [6.5007e-4, 1.0854e-3, 2.1808e-3, 2.3846e-2, 1.6742e2];
    expected.forEach((value, k) => expectRelative(rdp[k]!, value, 1e-4));
    expect(rdp[5]).toBe(Infinity);
  });

  it("stays at or below dp_accounting's absolute-value series, equal at integer orders", () => {
    // Same event, dp_accounting since 2024, test_compute_rdp_poisson_sampled_gaussian, rtol=1e-4:
    // https://github.com/google/differential-privacy/blob/b5b0286e313b64a692abfc8c528d54ef47d960a0/python/dp_accounting/dp_accounting/rdp/rdp_privacy_accountant_test.py#L508-L532
    // At 1.5 that series' |C(α,i)| terms add ~3% over the exact 6.5007e-4 above.
    const rdp = rdpOf(0.01, 2.5, 50, [1.5, 2.5, 5, 50, 100]);
    const current = [6.70579741e-4, 1.0854871e-3, 2.18075656e-3, 2.38460375e-2, 1.67416308e2];
    expect(rdp[0]).toBeLessThan(current[0]!);
    expect(rdp[0]).toBeGreaterThan(0.96 * current[0]!);
    for (let k = 1; k < current.length; k++) expectRelative(rdp[k]!, current[k]!, 1e-4);
  });

  // dp_accounting test_compute_log_a_equals_mp's cases (rtol=1e-4, atol=1e-8 on log A):
  // https://github.com/google/differential-privacy/blob/b5b0286e313b64a692abfc8c528d54ef47d960a0/python/dp_accounting/dp_accounting/rdp/rdp_privacy_accountant_test.py#L751-L770
  // then cases where q is large and the fractional series converges only polynomially
  // (dp_accounting gives up on q = 0.1, σ = 1: test_log_a_frac_early_termination, #L1225).
  it.each([
    [1e-7, 0.1, 1.01], [1e-6, 0.1, 256], [1e-5, 0.1, 256.1], [1e-6, 1, 27], [1e-4, 1, 1.5],
    [1e-3, 1, 2], [0.01, 10, 20], [0.1, 100, 20.5], [0.99, 0.1, 256], [0.999, 100, 256.1],
    [0.1, 1, 1.25], [0.1, 1, 1.1], [0.5, 1, 1.3], [0.05, 0.5, 1.25], [0.4, 12, 58.7],
  ])('agrees with numerical integration at q = %s, σ = %s, α = %s', (q, sigma, alpha) => {
    const logA = sampledGaussianRdp(q, sigma, [alpha])[0]! * (alpha - 1);
    expectRelative(logA, logAByQuadrature(q, sigma, alpha), 1e-7, 1e-12);
  });

  it('rejects a sampling rate outside [0, 1], negative noise and orders ≤ 1', () => {
    expectBadRequest(() => sampledGaussianRdp(1.1, 1));
    expectBadRequest(() => sampledGaussianRdp(-0.1, 1));
    expectBadRequest(() => sampledGaussianRdp(0.1, -1));
    expectBadRequest(() => sampledGaussianRdp(0.1, 1, [1]));
    expectBadRequest(() => sampledGaussianRdp(0.1, 1, []));
    expectBadRequest(() => sampledGaussianRdp(0.1, 1, [1e12]));
  });
});

describe('epsilonFromRdp and deltaFromRdp', () => {
  it('convert pure DP as dp_accounting does', () => {
    // test_compute_epsilon_delta_pure_dp: https://github.com/google/differential-privacy/blob/b5b0286e313b64a692abfc8c528d54ef47d960a0/python/dp_accounting/dp_accounting/rdp/rdp_privacy_accountant_test.py#L720-L735
    const orders = range(2, 33);
    const rdp = orders.map(() => 1.1);
    const { epsilon, order } = epsilonFromRdp(orders, rdp, 1e-5);
    expectPlaces(epsilon, 1.32783806176, 7);
    expect(order).toBe(32);
    const back = deltaFromRdp(orders, rdp, 1.32783806176);
    expectRelative(back.delta, 1e-5, 1e-9);
    expect(back.order).toBe(32);
  });

  it('give (1, 1e-6) for the Gaussian calibrated to it', () => {
    // test_compute_epsilon_delta_gaussian (orders 0.001·i; α = 1 dropped, it is never used):
    // https://github.com/google/differential-privacy/blob/b5b0286e313b64a692abfc8c528d54ef47d960a0/python/dp_accounting/dp_accounting/rdp/rdp_privacy_accountant_test.py#L737-L749
    const orders = Array.from({ length: 98_999 }, (_, i) => 0.001 * (i + 1001));
    const rdp = sampledGaussianRdp(1, 4.530877117, orders);
    expectPlaces(epsilonFromRdp(orders, rdp, 1e-6).epsilon, 1, 7);
    expectRelative(deltaFromRdp(orders, rdp, 1).delta, 1e-6, 1e-6);
  });

  it('are mutually inverse, as in dp_accounting test_epsilon_delta_consistency', () => {
    // https://github.com/google/differential-privacy/blob/b5b0286e313b64a692abfc8c528d54ef47d960a0/python/dp_accounting/dp_accounting/rdp/rdp_privacy_accountant_test.py#L799-L818
    const orders = range(2, 50);
    for (const q of [0, 0.01, 0.1, 0.8, 1]) {
      for (const z of [0, 0.1, 1, 10, 100]) {
        const rdp = sampledGaussianRdp(q, z, orders);
        for (const delta of [0.99, 0.9, 0.1, 0.01, 1e-3, 1e-5, 1e-9, 1e-12]) {
          const { epsilon } = epsilonFromRdp(orders, rdp, delta);
          const delta2 = deltaFromRdp(orders, rdp, epsilon).delta;
          if (epsilon === Infinity) expect(delta2).toBe(1);
          else if (epsilon === 0) expect(delta2).toBeLessThanOrEqual(delta);
          else expectRelative(delta2, delta, 1e-9);
        }
      }
    }
  });

  it('spend nothing when nothing is sampled, everything without noise', () => {
    // test_zero_poisson_sample and test_epsilon_non_private_gaussian, #L223-L245 of the file above
    const orders = [3.14159];
    expect(epsilonFromRdp(orders, sampledGaussianRdp(0, 1, orders), 1e-10).epsilon).toBe(0);
    expect(deltaFromRdp(orders, sampledGaussianRdp(0, 1, orders), 1e-10).delta).toBe(0);
    expect(epsilonFromRdp(orders, sampledGaussianRdp(1, 0, orders), 0.1).epsilon).toBe(Infinity);
  });

  it("reproduce TF Privacy's pre-2020 values with Mironov's conversion, and improve on them", () => {
    // test_get_privacy_spent_check_target_delta, 1.258575 at order 20, places=5:
    // https://github.com/tensorflow/privacy/blob/8d53d8cc59c65a671865fb8d16f8f1ef4e87c823/tensorflow_privacy/privacy/analysis/rdp_accountant_test.py#L131-L137
    const orders = range(2, 33);
    const rdp = rdpOf(0.01, 4, 10_000, orders);
    const old = mironovEpsilonFromRdp(orders, rdp, 1e-5);
    expectPlaces(old.epsilon, 1.258575, 5);
    expect(old.order).toBe(20);
    expect(epsilonFromRdp(orders, rdp, 1e-5).epsilon).toBeLessThan(old.epsilon);
  });

  it('compose heterogeneous runs: test_check_composition', () => {
    // 8.509656 at order 2.5, places=5, old conversion: https://github.com/tensorflow/privacy/blob/8d53d8cc59c65a671865fb8d16f8f1ef4e87c823/tensorflow_privacy/privacy/analysis/rdp_accountant_test.py#L147-L166
    // after Dec 2020 only eps ≤ 8.509656: https://github.com/tensorflow/privacy/blob/db292fc5d8dbf28b692137b85e5b3f922062ea43/tensorflow_privacy/privacy/analysis/rdp_accountant_test.py#L196-L212
    const orders = [1.25, 1.5, 1.75, 2, 2.5, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 64, 256];
    const rdp = composeRdp([
      { rdp: sampledGaussianRdp(1e-4, 0.4, orders), steps: 40_000 },
      { rdp: sampledGaussianRdp(0.1, 2, orders), steps: 100 },
    ]);
    const old = mironovEpsilonFromRdp(orders, rdp, 1e-5);
    expectPlaces(old.epsilon, 8.509656, 5);
    expect(old.order).toBe(2.5);
    expect(epsilonFromRdp(orders, rdp, 1e-5).epsilon).toBeLessThanOrEqual(8.509656);
  });

  it('compose as in the Opacus RDP module example: (0.336, 23)', () => {
    // https://github.com/pytorch/opacus/blob/4d0ebc84613d214fbfd37fbfd1390e3747a625ce/opacus/accountants/analysis/rdp.py#L32-L43 (doctest, +NUMBER: 3 places)
    const orders = range(2, 33);
    const rdp = composeRdp([
      { rdp: sampledGaussianRdp(1e-5, 1, orders), steps: 10 },
      { rdp: sampledGaussianRdp(1e-4, 3, orders), steps: 4 },
    ]);
    const { epsilon, order } = epsilonFromRdp(orders, rdp, 1e-5);
    expectPlaces(epsilon, 0.336, 3);
    expect(order).toBe(23);
  });

  it('reject mismatched curves, negative RDP and δ outside (0, 1)', () => {
    expectBadRequest(() => epsilonFromRdp([2, 3], [0.1], 1e-5));
    expectBadRequest(() => epsilonFromRdp([2], [-0.1], 1e-5));
    expectBadRequest(() => epsilonFromRdp([2], [0.1], 0));
    expectBadRequest(() => epsilonFromRdp([2], [0.1], 1));
    expectBadRequest(() => deltaFromRdp([2], [0.1], -1));
    expectBadRequest(() => composeRdp([{ rdp: [1], steps: 1 }, { rdp: [1, 2], steps: 1 }]));
  });
});

describe('gaussianEpsilon', () => {
  // TF Privacy test_compute_dp_sgd_privacy (compute_dp_sgd_privacy with DEFAULT_ORDERS,
  // steps = ⌈epochs·n/batch⌉), assertAlmostEqual places=7 and the order.
  const dpSgd = (n: number, batch: number, z: number, epochs: number, delta: number) => {
    const q = batch / n;
    const steps = Math.ceil((epochs * n) / batch);
    return { tight: gaussianEpsilon({ q, noiseMultiplier: z, steps, delta }), rdp: rdpOf(q, z, steps, DEFAULT_ORDERS) };
  };

  it('reproduces TF Privacy compute_dp_sgd_privacy Test0 and Test1, current and pre-2020', () => {
    // now: https://github.com/tensorflow/privacy/blob/03035d5d4a271ac795dab80f5bc1cef82fc3d462/tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py#L42-L43
    // before Dec 2020 (0.941870567, 1.70928734): https://github.com/tensorflow/privacy/blob/8d53d8cc59c65a671865fb8d16f8f1ef4e87c823/tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py#L29-L30
    const test0 = dpSgd(60_000, 150, 1.3, 15, 1e-5);
    expectPlaces(test0.tight.epsilon, 0.7242234026109595, 7);
    expect(test0.tight.order).toBe(19);
    expectPlaces(mironovEpsilonFromRdp(DEFAULT_ORDERS, test0.rdp, 1e-5).epsilon, 0.941870567, 7);
    const test1 = dpSgd(100_000, 100, 1.0, 30, 1e-7);
    expectPlaces(test1.tight.epsilon, 1.4154988495444842, 7);
    expect(test1.tight.order).toBe(13);
    expectPlaces(mironovEpsilonFromRdp(DEFAULT_ORDERS, test1.rdp, 1e-7).epsilon, 1.70928734, 7);
  });

  it('reproduces Test2, whose optimum is the fractional order 1.25', () => {
    // pre-2024 exact series 5907982.31138195: https://github.com/tensorflow/privacy/blob/3deaae30a15967e767dc755904611d48d8ed334b/tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py#L44
    // now 5907982.3113984 (|C(α,i)| series, a bound): https://github.com/tensorflow/privacy/blob/03035d5d4a271ac795dab80f5bc1cef82fc3d462/tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py#L44
    // pre-2020 5907984.81339406: https://github.com/tensorflow/privacy/blob/8d53d8cc59c65a671865fb8d16f8f1ef4e87c823/tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py#L31
    // places=7 on 5.9e6 is 15 significant digits; we hold 1e-12 relative.
    const test2 = dpSgd(100_000_000, 1024, 0.1, 10, 1e-7);
    expectRelative(test2.tight.epsilon, 5907982.31138195, 1e-12);
    expect(test2.tight.epsilon).toBeLessThanOrEqual(5907982.3113984);
    expect(test2.tight.order).toBe(1.25);
    expectRelative(mironovEpsilonFromRdp(DEFAULT_ORDERS, test2.rdp, 1e-7).epsilon, 5907984.81339406, 1e-12);
  });

  it.each([
    // [q, z, expected pre-2024 (exact series), expected now]; q = 1 is closed-form, unchanged
    [1, 0.7, 10.8602036, 10.8602036],
    [1, 0.35, 26.2880374, 26.2880374],
    [1e-2, 0.7, 3.2391922, 3.2392676],
    [1e-2, 0.35, 22.5970358, 22.6248601],
  ])('reproduces TF Privacy test_compute_dp_sgd_example_privacy at q = %s, z = %s', (q, z, exact, current) => {
    // 1.2 epochs at δ = 1e-5 with dp_accounting's default orders; microbatching halves z.
    // now: https://github.com/tensorflow/privacy/blob/03035d5d4a271ac795dab80f5bc1cef82fc3d462/tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py#L85-L114
    // pre-2024: https://github.com/tensorflow/privacy/blob/3deaae30a15967e767dc755904611d48d8ed334b/tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py#L86-L89
    const steps = q === 1 ? Math.ceil(1.2) : Math.ceil(1.2 / q);
    const { epsilon } = gaussianEpsilon({ q, noiseMultiplier: z, steps, delta: 1e-5, orders: DP_ACCOUNTING_ORDERS });
    expectPlaces(epsilon, exact, 7);
    expect(epsilon).toBeLessThanOrEqual(current);
  });

  it.each([
    // [noise multiplier, epochs, ε printed]
    [1.1, 60, 3.01],
    [1.1, 1, 1.03],
    [1.1, 2, 1.11],
    [1.3, 15, 1.19],
    [0.7, 45, 7.1],
  ])("reproduces TF Privacy's MNIST README (z = %s, %s epochs → ε = %s), a pre-2020 figure", (z, epochs, printed) => {
    // README "Expected Output" and "Select Parameters" (N = 60000, batch 256, δ = 1e-5, 2 decimals):
    // https://github.com/tensorflow/privacy/blob/03035d5d4a271ac795dab80f5bc1cef82fc3d462/tutorials/README.md#L88-L128
    // The 2019 tutorial that printed them used steps = epochs·⌊60000/256⌋, the orders
    // above and Mironov's conversion:
    // https://github.com/tensorflow/privacy/blob/d435fcbf9af0d1ffd41ebc15ae23595124f7aa73/tutorials/mnist_dpsgd_tutorial.py#L130-L182
    const rdp = rdpOf(256 / 60_000, z, epochs * Math.floor(60_000 / 256), TUTORIAL_ORDERS);
    expectPlaces(mironovEpsilonFromRdp(TUTORIAL_ORDERS, rdp, 1e-5).epsilon, printed, 2);
    // The tight conversion spends noticeably less (3.01 → 2.59 for the default run).
    expect(epsilonFromRdp(TUTORIAL_ORDERS, rdp, 1e-5).epsilon).toBeLessThan(printed - 0.2);
  });

  it("reproduces Opacus's test_rdp_accountant: z = 1.5, q = 0.04, 2250 steps → 7.32911117143", () => {
    // https://github.com/pytorch/opacus/blob/4d0ebc84613d214fbfd37fbfd1390e3747a625ce/opacus/tests/accountants_test.py#L94-L104, places=7, with
    // RDPAccountant.DEFAULT_ALPHAS: https://github.com/pytorch/opacus/blob/4d0ebc84613d214fbfd37fbfd1390e3747a625ce/opacus/accountants/rdp.py#L22
    const { epsilon } = gaussianEpsilon({ q: 0.04, noiseMultiplier: 1.5, steps: 2250, delta: 1e-5, orders: TUTORIAL_ORDERS });
    expectPlaces(epsilon, 7.32911117143, 7);
  });

  it('is 0 with nothing sampled and Infinity with no noise', () => {
    expect(gaussianEpsilon({ q: 0, noiseMultiplier: 1, steps: 10, delta: 1e-5 }).epsilon).toBe(0);
    expect(gaussianEpsilon({ q: 0.1, noiseMultiplier: 0, steps: 10, delta: 1e-5 }).epsilon).toBe(Infinity);
  });

  it('gives the δ back for the ε it gave', () => {
    const task = { q: 0.04, noiseMultiplier: 1.5, steps: 2250 };
    const { epsilon } = gaussianEpsilon({ ...task, delta: 1e-5 });
    expectRelative(gaussianDelta({ ...task, epsilon }).delta, 1e-5, 1e-9);
  });

  it('rejects bad tasks with PRIVACY_INVALID', () => {
    const task = { q: 0.01, noiseMultiplier: 1, steps: 100, delta: 1e-5 };
    expectBadRequest(() => gaussianEpsilon({ ...task, delta: 0 }));
    expectBadRequest(() => gaussianEpsilon({ ...task, delta: 1 }));
    expectBadRequest(() => gaussianEpsilon({ ...task, q: 1.5 }));
    expectBadRequest(() => gaussianEpsilon({ ...task, steps: 0 }));
    expectBadRequest(() => gaussianEpsilon({ ...task, steps: 2.5 }));
    expectBadRequest(() => gaussianEpsilon({ ...task, noiseMultiplier: Number.NaN }));
  });
});

describe('calibrateGaussianNoise', () => {
  it.each([
    [0.01, 1000, 1e-5, 0.5],
    [0.1, 100, 1e-5, 3],
    [0.5, 20, 1e-6, 1],
    [1, 10, 1e-5, 2],
    [256 / 60_000, 14_063, 1e-5, 3],
  ])('finds the least z for q = %s, %s steps, δ = %s, ε = %s', (q, steps, delta, epsilon) => {
    const z = calibrateGaussianNoise({ q, steps, delta, epsilon });
    const spent = gaussianEpsilon({ q, noiseMultiplier: z, steps, delta }).epsilon;
    expect(spent).toBeLessThanOrEqual(epsilon);
    expect(epsilon - spent).toBeLessThan(1e-3);
    expect(gaussianEpsilon({ q, noiseMultiplier: 0.99 * z, steps, delta }).epsilon).toBeGreaterThan(epsilon);
  });

  it.each([
    [2250, 1.416],
    [2000, 1.3562],
  ])("agrees with Opacus's get_noise_multiplier: q = 0.04, %s steps, ε = 8 → %s", (steps, published) => {
    // test_get_noise_multiplier_rdp_epochs / _steps, places=4: https://github.com/pytorch/opacus/blob/4d0ebc84613d214fbfd37fbfd1390e3747a625ce/opacus/tests/accountants_test.py#L132-L161
    // Opacus bisects until ε is within 0.01 below the target, so its z lands a little high.
    const task = { q: 0.04, steps, delta: 1e-5, orders: TUTORIAL_ORDERS };
    const z = calibrateGaussianNoise({ ...task, epsilon: 8 });
    expect(z).toBeLessThanOrEqual(published);
    expect(z).toBeGreaterThan(0.9995 * published);
    const atPublished = gaussianEpsilon({ ...task, noiseMultiplier: published }).epsilon;
    expect(atPublished).toBeLessThanOrEqual(8);
    expect(atPublished).toBeGreaterThan(7.99);
  });

  it('rejects impossible or malformed budgets with PRIVACY_INVALID', () => {
    const budget = { q: 0.01, steps: 100, delta: 1e-5, epsilon: 1 };
    expectBadRequest(() => calibrateGaussianNoise({ ...budget, epsilon: 0 }));
    expectBadRequest(() => calibrateGaussianNoise({ ...budget, epsilon: -1 }));
    expectBadRequest(() => calibrateGaussianNoise({ ...budget, epsilon: Infinity }));
    expectBadRequest(() => calibrateGaussianNoise({ ...budget, delta: 0 }));
    expectBadRequest(() => calibrateGaussianNoise({ ...budget, delta: 1 }));
    expectBadRequest(() => calibrateGaussianNoise({ ...budget, q: 0 }));
    expectBadRequest(() => calibrateGaussianNoise({ ...budget, q: 1.01 }));
    expectBadRequest(() => calibrateGaussianNoise({ ...budget, steps: 0 }));
  });
});

describe('poissonSubsampledRdp (Zhu & Wang Theorem 6)', () => {
  const orders = [...range(2, 64), 128, 256, 512];

  it.each([
    [0.01, 1.1],
    [0.001, 0.8],
    [0.1, 2],
    [0.3, 1.5],
  ])('bounds the exact sampled Gaussian from above at q = %s, z = %s, tightly at α = 2', (q, z) => {
    const exact = sampledGaussianRdp(q, z, orders);
    const bound = poissonSubsampledRdp(q, (a) => a / (2 * z * z), orders);
    orders.forEach((_, k) => expect(bound[k]!).toBeGreaterThanOrEqual(exact[k]! * (1 - 1e-12)));
    expectRelative(bound[0]!, exact[0]!, 1e-12);
  });

  it('costs under 10% more ε than the exact accountant on the MNIST DP-SGD run', () => {
    const q = 256 / 60_000;
    const steps = 14_063;
    const exact = epsilonFromRdp(orders, rdpOf(q, 1.1, steps, orders), 1e-5).epsilon;
    const generic = composeRdp([{ rdp: poissonSubsampledRdp(q, (a) => a / (2 * 1.1 * 1.1), orders), steps }]);
    const bound = epsilonFromRdp(orders, generic, 1e-5).epsilon;
    expect(bound).toBeGreaterThanOrEqual(exact);
    expect(bound).toBeLessThan(1.1 * exact);
  });

  it('is 0 at q = 0, the base RDP at q = 1, and never above the base RDP', () => {
    const base = (a: number): number => a * 0.3;
    expect(poissonSubsampledRdp(0, base, [2, 5])).toEqual([0, 0]);
    expect(poissonSubsampledRdp(1, base, [2, 5])).toEqual([0.6, 1.5]);
    poissonSubsampledRdp(0.9, base, orders).forEach((r, k) => expect(r).toBeLessThanOrEqual(base(orders[k]!)));
  });

  it('takes integer orders ≥ 2 only, and rejects a negative base RDP', () => {
    expectBadRequest(() => poissonSubsampledRdp(0.1, (a) => a, [2.5]));
    expectBadRequest(() => poissonSubsampledRdp(0.1, (a) => a, [1]));
    expectBadRequest(() => poissonSubsampledRdp(0.1, () => -1, [3]));
  });
});

describe('skellamRdp', () => {
  it('is the Gaussian term plus the smaller correction', () => {
    // l1 = 4, l2 = 2, V = 10, α = 3: 3·4/20 + min((5·4 + 24)/400, 12/20) = 0.6 + 0.11
    expectRelative(skellamRdp(4, 2, 10, [3])[0]!, 0.71, 1e-15);
    // small variance, where the 3Δ1/2V branch is the smaller: 2·1/2 + min((3 + 6)/4, 3/2) = 1 + 1.5
    expectRelative(skellamRdp(1, 1, 1, [2])[0]!, 2.5, 1e-15);
  });

  it.each([
    [2, 1], [2, 3], [5, 2], [20, 1], [20, 3],
  ])('bounds the exact divergence of shifted 1-D Skellams (μ = %s, shift %s), with variance 2μ', (mu, shift) => {
    // This pins the parametrisation: Sk(μ, μ) has variance 2μ. Reading μ as the variance
    // (so passing 4μ for "variance 2μ") halves the Gaussian term and undercuts the truth.
    let undercut = false;
    for (const alpha of [2, 5, 10]) {
      const exact = shiftedSkellamRenyi(mu, shift, alpha);
      expect(skellamRdp(shift, shift, 2 * mu, [alpha])[0]!).toBeGreaterThanOrEqual(exact);
      if (skellamRdp(shift, shift, 4 * mu, [alpha])[0]! < exact) undercut = true;
    }
    expect(undercut).toBe(true);
  });

  it('approaches the Gaussian α Δ2²/2V as the variance grows', () => {
    const [a] = skellamRdp(3000, 100, 1e8, [8]);
    expectRelative(a!, (8 * 100 * 100) / (2 * 1e8), 1e-3);
  });

  it('takes the L1 bound as the L2 bound when it is the smaller (‖x‖₂ ≤ ‖x‖₁)', () => {
    expect(skellamRdp(1, 2, 10, [2, 7])).toEqual(skellamRdp(1, 1, 10, [2, 7]));
  });

  it('rejects non-positive sensitivities and variances', () => {
    expectBadRequest(() => skellamRdp(0, 1, 10));
    expectBadRequest(() => skellamRdp(2, 0, 10));
    expectBadRequest(() => skellamRdp(2, 1, 0));
    expectBadRequest(() => skellamRdp(2, Infinity, 10));
  });
});

describe('skellamEpsilon and calibrateSkellamVariance', () => {
  const sensitivities = { l1: 10_000, l2: 300 };

  it('never beats the Gaussian of the same standard deviation', () => {
    for (const [q, steps] of [[1, 10], [0.01, 1000], [0.1, 100]] as const) {
      const variance = 4e6;
      const skellam = skellamEpsilon({ q, steps, delta: 1e-5, variance, ...sensitivities }).epsilon;
      const gaussian = gaussianEpsilon({ q, steps, delta: 1e-5, noiseMultiplier: Math.sqrt(variance) / sensitivities.l2 }).epsilon;
      expect(skellam).toBeGreaterThanOrEqual(gaussian);
    }
  });

  it('calibrates to the Gaussian noise when there is no sampling and the sensitivity is large', () => {
    const budget = { q: 1, steps: 10, delta: 1e-5, epsilon: 2 };
    const variance = calibrateSkellamVariance({ ...budget, ...sensitivities });
    const z = calibrateGaussianNoise(budget);
    expectRelative(Math.sqrt(variance) / sensitivities.l2, z, 1e-4);
  });

  it.each([
    [0.1, 100, 3],
    [0.01, 1000, 1],
    [1, 10, 2],
  ])('finds the least variance for q = %s, %s steps, ε = %s', (q, steps, epsilon) => {
    const task = { q, steps, delta: 1e-5, ...sensitivities };
    const variance = calibrateSkellamVariance({ ...task, epsilon });
    const spent = skellamEpsilon({ ...task, variance }).epsilon;
    expect(spent).toBeLessThanOrEqual(epsilon);
    expect(epsilon - spent).toBeLessThan(1e-3);
    expect(skellamEpsilon({ ...task, variance: 0.99 * variance }).epsilon).toBeGreaterThan(epsilon);
  });

  it('rejects bad tasks with PRIVACY_INVALID', () => {
    const budget = { q: 0.1, steps: 100, delta: 1e-5, epsilon: 1, ...sensitivities };
    expectBadRequest(() => calibrateSkellamVariance({ ...budget, epsilon: 0 }));
    expectBadRequest(() => calibrateSkellamVariance({ ...budget, q: 0 }));
    expectBadRequest(() => calibrateSkellamVariance({ ...budget, l1: 0 }));
    expectBadRequest(() => skellamEpsilon({ ...budget, variance: -1 }));
    expectBadRequest(() => skellamEpsilon({ ...budget, variance: 10, orders: [1.5, 2.5] }));
  });
});

describe('adaptiveClipNoise', () => {
  it('adds exactly the noise that the clipped-count query spends', () => {
    // TFF's default count noise is 0.05 × clients per round: z = 1 with 100 clients.
    const zDelta = adaptiveClipNoise(1, 5);
    expectRelative(zDelta, 1 / Math.sqrt(1 - 1 / 100), 1e-15);
    // The update release and the count release (multiplier 2σ_b) compose to one Gaussian of z.
    const orders = [2, 3.5, 10];
    const pair = composeRdp([
      { rdp: sampledGaussianRdp(1, zDelta, orders), steps: 1 },
      { rdp: sampledGaussianRdp(1, 2 * 5, orders), steps: 1 },
    ]);
    sampledGaussianRdp(1, 1, orders).forEach((r, k) => expectRelative(pair[k]!, r, 1e-12));
  });

  it('throws when the count noise is too small to leave budget for the update', () => {
    expectBadRequest(() => adaptiveClipNoise(2, 1));
    expectBadRequest(() => adaptiveClipNoise(2, 0.5));
    expectBadRequest(() => adaptiveClipNoise(0, 5));
    expectBadRequest(() => adaptiveClipNoise(1, 0));
  });
});
