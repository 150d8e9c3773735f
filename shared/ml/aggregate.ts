import { TributaryError } from '../errors.ts';

/** A model's weights (or a delta): its tensors' values in model order. */
export type Weights = Float32Array[];

export interface WeightedUpdate {
  delta: Weights;
  /** Typically the client's sample count. */
  weight: number;
}

function checkSameShape(a: Weights, b: Weights, what: string): void {
  if (a.length !== b.length) {
    throw new TributaryError('BAD_REQUEST', `${what}: ${a.length} tensors vs ${b.length}`);
  }
  for (let t = 0; t < a.length; t++) {
    if (a[t]!.length !== b[t]!.length) {
      throw new TributaryError('BAD_REQUEST', `${what}: tensor ${t} has ${a[t]!.length} values vs ${b[t]!.length}`);
    }
  }
}

/**
 * Σ wᵢΔᵢ / Σ wᵢ. Sums in float64: adding hundreds of float32 deltas of similar size
 * would otherwise lose low bits on every addition.
 */
export function weightedMean(updates: readonly WeightedUpdate[]): Weights {
  const first = updates[0];
  if (first === undefined) throw new TributaryError('BAD_REQUEST', 'no updates to average');
  let total = 0;
  for (const u of updates) {
    if (!Number.isFinite(u.weight) || u.weight < 0) {
      throw new TributaryError('BAD_REQUEST', `update weight ${u.weight} is not a non-negative number`);
    }
    checkSameShape(first.delta, u.delta, 'updates differ in shape');
    total += u.weight;
  }
  if (!(total > 0) || !Number.isFinite(total)) {
    throw new TributaryError('BAD_REQUEST', `total weight ${total} is not positive and finite`);
  }

  const out: Weights = [];
  for (let t = 0; t < first.delta.length; t++) {
    const n = first.delta[t]!.length;
    const acc = new Float64Array(n);
    for (const u of updates) {
      const w = u.weight;
      if (w === 0) continue;
      const d = u.delta[t]!;
      for (let i = 0; i < n; i++) acc[i] = acc[i]! + w * d[i]!;
    }
    const mean = new Float32Array(n);
    for (let i = 0; i < n; i++) mean[i] = acc[i]! / total;
    out.push(mean);
  }
  return out;
}

/** a + scale · b, as new arrays. */
export function addWeights(a: Weights, b: Weights, scale = 1): Weights {
  checkSameShape(a, b, 'cannot add weights');
  return a.map((x, t) => {
    const y = b[t]!;
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i]! + scale * y[i]!;
    return out;
  });
}

/** a − b, as new arrays. */
export function subtractWeights(a: Weights, b: Weights): Weights {
  checkSameShape(a, b, 'cannot subtract weights');
  return a.map((x, t) => {
    const y = b[t]!;
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i]! - y[i]!;
    return out;
  });
}

export function countParameters(w: Weights): number {
  let n = 0;
  for (const t of w) n += t.length;
  return n;
}

/** FedBuff's polynomial staleness discount (Nguyen et al. 2022): 1/√(1 + τ), τ = model versions behind. */
export function stalenessWeight(staleness: number): number {
  if (!Number.isInteger(staleness) || staleness < 0) throw new TributaryError('INTERNAL', `staleness must be a non-negative integer, got ${staleness}`);
  return 1 / Math.sqrt(1 + staleness);
}

export interface BufferedUpdate {
  delta: Weights;
  samples: number;
  staleness: number;
}

/**
 * FedBuff's damping as the update itself: s(τ)·Δ, weighed by its samples. The sample-weighted
 * mean of these is Σ nᵢ·s(τᵢ)·Δᵢ / Σ nᵢ: stale updates move the model less rather than being
 * renormalized away, and any combine rule (a median too) can run on the buffer.
 */
export function discountForStaleness(u: BufferedUpdate): WeightedUpdate {
  const s = stalenessWeight(u.staleness);
  return { delta: s === 1 ? u.delta : u.delta.map((t) => t.map((v) => v * s)), weight: u.samples };
}
