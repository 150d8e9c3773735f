import { describe, expect, it } from 'vitest';
import type { LabelledSet } from '../../shared/data/dataset.ts';
import { TributaryError } from '../../shared/errors.ts';
import type { Weights } from '../../shared/ml/aggregate.ts';
import {
  ATTACKS,
  alieUpdate,
  alieZMax,
  attackerCount,
  craftUpdates,
  flipLabel,
  flipLabels,
  gaussianUpdate,
  normalQuantile,
  parseByzantine,
  rms,
  scaleUpdate,
  signFlip,
} from '../../shared/ml/attacks.ts';
import { createRng, sampleStandardNormal } from '../../shared/random.ts';

const w = (...tensors: number[][]): Weights => tensors.map((t) => Float32Array.from(t));
const plain = (weights: Weights) => weights.map((t) => Array.from(t));

function expectBadRequest(run: () => unknown, mentioning: string): void {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(TributaryError);
    expect((error as TributaryError).code).toBe('BAD_REQUEST');
    expect((error as TributaryError).message).toContain(mentioning);
    return;
  }
  expect.fail(`expected a BAD_REQUEST mentioning "${mentioning}"`);
}

describe('parseByzantine', () => {
  it('reads <fraction>:<attack>', () => {
    expect(parseByzantine('0.2:alie')).toEqual({ fraction: 0.2, attack: 'alie' });
    expect(parseByzantine(' .25:sign-flip ')).toEqual({ fraction: 0.25, attack: 'sign-flip' });
    for (const attack of ATTACKS) expect(parseByzantine(`0.1:${attack}`).attack).toBe(attack);
  });

  it('names a missing separator', () => {
    expectBadRequest(() => parseByzantine('0.2'), '<fraction>:<attack>');
  });

  it('names a fraction outside (0, 1) or not a plain decimal', () => {
    for (const raw of ['0', '1', '1.5', '-0.1', '0x1', 'abc', '', 'Infinity', '0.2 ']) {
      expectBadRequest(() => parseByzantine(`${raw}:alie`), `"${raw}"`);
    }
  });

  it('names an unknown attack and lists the known ones', () => {
    expectBadRequest(() => parseByzantine('0.2:flip'), 'unknown attack "flip": use sign-flip, scale, gaussian, label-flip, alie');
    expectBadRequest(() => parseByzantine('0.2:'), 'unknown attack ""');
  });

  it('counts attackers to the nearest client', () => {
    expect(attackerCount(0.2, 20)).toBe(4);
    expect(attackerCount(0.3, 10)).toBe(3); // 0.3 · 10 = 3.0000000000000004
    expect(attackerCount(0.01, 20)).toBe(0);
  });
});

describe('model-poisoning attacks', () => {
  it('sign-flip negates the honest update, boosted 4×', () => {
    expect(plain(signFlip(w([1, -2], [0.5])))).toEqual([[-4, 8], [-2]]);
    expect(plain(signFlip(w([1, -2], [0.5]), 1))).toEqual([[-1, 2], [-0.5]]);
  });

  it('scale multiplies it by 10', () => {
    expect(plain(scaleUpdate(w([1, -2], [0.5])))).toEqual([[10, -20], [5]]);
    expect(plain(scaleUpdate(w([1]), 3))).toEqual([[3]]);
  });

  it('rms runs over every coordinate of every tensor', () => {
    // √((3² + 4² + 0²) / 3) = √(25/3)
    expect(rms(w([3, 4], [0]))).toBeCloseTo(Math.sqrt(25 / 3), 12);
    expect(rms([])).toBe(0);
  });

  it('gaussian draws σ·N(0, 1) per coordinate with σ = 100 · the honest RMS', () => {
    const honest = w([3, 4], [0]); // rms √(25/3), so σ = 100√(25/3)
    const sigma = 100 * Math.sqrt(25 / 3);
    const reference = createRng(7);
    const expected = [sampleStandardNormal(reference), sampleStandardNormal(reference), sampleStandardNormal(reference)].map((z) => Math.fround(sigma * z));
    expect(plain(gaussianUpdate(honest, createRng(7))).flat()).toEqual(expected);
  });

  it('gaussian noise has the stated spread and is zero around a zero update', () => {
    const honest = w(new Array<number>(40_000).fill(0.5)); // rms 0.5; at factor 10, σ = 5
    const noise = gaussianUpdate(honest, createRng(1), 10)[0]!;
    const mean = noise.reduce((a, v) => a + v, 0) / noise.length;
    expect(Math.abs(mean)).toBeLessThan(0.1); // 4 standard errors
    expect(Math.abs(rms([noise]) - 5)).toBeLessThan(0.071); // 4 standard errors, σ/√(2N) each
    expect(gaussianUpdate(w([0, 0]), createRng(1))[0]!.every((v) => v === 0)).toBe(true);
  });
});

describe('label flipping', () => {
  it('maps class l to classes − 1 − l', () => {
    expect(flipLabel(0, 10)).toBe(9);
    expect(flipLabel(3, 10)).toBe(6);
    expect(flipLabel(9, 10)).toBe(0);
    expectBadRequest(() => flipLabel(10, 10), 'label 10 is outside 0..9');
    expectBadRequest(() => flipLabel(-1, 10), 'label -1');
  });

  it('relabels a copy and leaves the original set alone', () => {
    const set: LabelledSet = { x: Float32Array.of(0.1, 0.2, 0.3), y: Int32Array.of(0, 4, 9), n: 3, features: 1 };
    const flipped = flipLabels(set, 10);
    expect(Array.from(flipped.y)).toEqual([9, 5, 0]);
    expect(Array.from(set.y)).toEqual([0, 4, 9]);
    expect(flipped.x).toBe(set.x);
    expect([flipped.n, flipped.features]).toEqual([3, 1]);
  });
});

describe('the standard normal quantile (AS241)', () => {
  it('matches tabulated values', () => {
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963985, 9);
    expect(normalQuantile(0.995)).toBeCloseTo(2.575829304, 9);
    expect(normalQuantile(0.95)).toBeCloseTo(1.644853627, 9);
    expect(normalQuantile(0.9)).toBeCloseTo(1.281551566, 9);
    expect(normalQuantile(0.65)).toBeCloseTo(0.385320466, 9);
    expect(normalQuantile(0.999)).toBeCloseTo(3.090232306, 9);
    expect(normalQuantile(1e-10)).toBeCloseTo(-6.361340902, 9); // the far tail, r > 5
    expect(normalQuantile(0.5)).toBe(0);
  });

  it('is antisymmetric about 1/2 and infinite at the ends', () => {
    for (const p of [0.01, 0.2, 0.424, 0.426, 1e-5]) expect(normalQuantile(p)).toBeCloseTo(-normalQuantile(1 - p), 9);
    expect(normalQuantile(0)).toBe(-Infinity);
    expect(normalQuantile(1)).toBe(Infinity);
  });

  it('refuses what is not a probability', () => {
    expectBadRequest(() => normalQuantile(1.1), '[0, 1], got 1.1');
    expectBadRequest(() => normalQuantile(Number.NaN), 'got NaN');
  });
});

describe('A Little Is Enough', () => {
  it('z_max = Φ⁻¹((n − s)/n), s = ⌊n/2 + 1⌋ − f', () => {
    expect(alieZMax(20, 4)).toBeCloseTo(0.385320466, 9); // s = 11 − 4 = 7, Φ⁻¹(13/20)
    expect(alieZMax(50, 24)).toBeCloseTo(1.750686071, 9); // s = 26 − 24 = 2, Φ⁻¹(48/50): the paper's example
    expect(alieZMax(10, 2)).toBeCloseTo(0.253347103, 9); // s = 6 − 2 = 4, Φ⁻¹(6/10)
    expect(alieZMax(20, 1)).toBe(0); // s = 10, Φ⁻¹(1/2): one attacker cannot move the median
  });

  it('refuses attacker counts outside its model', () => {
    expectBadRequest(() => alieZMax(20, 0), 'f = 0, n = 20');
    expectBadRequest(() => alieZMax(20, 11), 's = ⌊n/2 + 1⌋ − f = 0');
    expectBadRequest(() => alieZMax(20, 2.5), 'f = 2.5');
  });

  it('sends μ − z·σ per coordinate, σ the sample standard deviation', () => {
    // Coordinate 0: 1, 3, 5 → μ = 3, σ = √((4 + 0 + 4)/2) = 2 → 3 − 0.5·2 = 2. Coordinate 1: all 2 → σ = 0 → 2.
    // Tensor 1: −1, 0, 4 → μ = 1, σ = √((4 + 1 + 9)/2) = √7 → 1 − 0.5√7.
    const benign = [w([1, 2], [-1]), w([3, 2], [0]), w([5, 2], [4])];
    const out = alieUpdate(benign, 0.5);
    expect(Array.from(out[0]!)).toEqual([2, 2]);
    expect(out[1]![0]).toBeCloseTo(1 - 0.5 * Math.sqrt(7), 6);
  });

  it('needs two benign updates of one shape', () => {
    expectBadRequest(() => alieUpdate([w([1])], 1), 'at least 2 benign updates, got 1');
    expectBadRequest(() => alieUpdate([w([1]), w([1, 2])], 1), 'differ in shape');
  });
});

describe('craftUpdates', () => {
  const benign = [w([1, -1]), w([3, 1]), w([2, 0]), w([0, 4])];
  const context = { clients: 20, rng: createRng(3) };

  it('turns each attacker’s benign update into its upload', () => {
    expect(craftUpdates('sign-flip', benign, context).map(plain)).toEqual([[[-4, 4]], [[-12, -4]], [[-8, -0]], [[-0, -16]]]);
    expect(craftUpdates('scale', benign, context).map(plain)).toEqual([[[10, -10]], [[30, 10]], [[20, 0]], [[0, 40]]]);
    expect(craftUpdates('gaussian', benign, context)).toHaveLength(4);
  });

  it('lets label-flip updates through: the poison is in their training data', () => {
    expect(craftUpdates('label-flip', benign, context)).toEqual(benign);
  });

  it('gives every ALIE colluder the same update, z_max from the round’s n and their count', () => {
    const crafted = craftUpdates('alie', benign, context);
    const expected = plain(alieUpdate(benign, alieZMax(20, 4)));
    expect(crafted.map(plain)).toEqual([expected, expected, expected, expected]);
    // Coordinate 0: μ = 1.5, σ = √((0.25 + 2.25 + 0.25 + 2.25)/3) = √(5/3).
    expect(expected[0]![0]).toBeCloseTo(1.5 - 0.385320466 * Math.sqrt(5 / 3), 6);
    expect(craftUpdates('alie', [], context)).toEqual([]);
  });
});
