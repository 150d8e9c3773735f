import { TributaryError, type ErrorCode } from '../../../shared/errors.ts';
import type { Weights } from '../../../shared/ml/aggregate.ts';
import type { CombineRuleName } from '../../../shared/protocol/task.ts';
import type { ClientUpdate } from '../strategy.ts';

/** What every robust rule does with a round's batch before its math: check it, put it in one order, read it by coordinate. */

/** A batch the rule cannot combine: too few updates for its f, or a client twice. (Shapes and values have their own codes.) */
const UNUSABLE: ErrorCode = 'BAD_REQUEST';

/**
 * Checks a round's updates and returns them sorted by clientId (code-unit order, not the
 * locale's), so every rule sees one order whatever order they arrived in: ties break by
 * clientId, and float64 sums add in the same order on every run.
 */
export function checkBatch(rule: CombineRuleName, updates: readonly ClientUpdate[], minimum: number): ClientUpdate[] {
  const need = Math.max(1, minimum);
  if (updates.length < need) {
    throw new TributaryError(UNUSABLE, `${rule} needs at least ${need} updates in a round, got ${updates.length}`);
  }
  const sorted = [...updates].sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0));
  const shape = sorted[0]!.delta;
  for (let k = 0; k < sorted.length; k++) {
    const u = sorted[k]!;
    if (k > 0 && u.clientId === sorted[k - 1]!.clientId) throw new TributaryError(UNUSABLE, `${rule}: client ${u.clientId} has two updates in the batch`);
    if (u.delta.length !== shape.length) {
      throw new TributaryError('UPDATE_WRONG_LENGTH', `${rule}: update of ${u.clientId} has ${u.delta.length} tensors, others ${shape.length}`);
    }
    for (let t = 0; t < shape.length; t++) {
      const values = u.delta[t]!;
      if (values.length !== shape[t]!.length) {
        throw new TributaryError('UPDATE_WRONG_LENGTH', `${rule}: tensor ${t} of ${u.clientId} has ${values.length} values, others ${shape[t]!.length}`);
      }
      for (let i = 0; i < values.length; i++) {
        if (!Number.isFinite(values[i]!)) throw new TributaryError('UPDATE_NOT_FINITE', `${rule}: update of ${u.clientId}, tensor ${t}, value ${i}`);
      }
    }
  }
  return sorted;
}

/** Sorts a[0, n) ascending in place: insertion sort for the few values of a round, the engine's sort beyond. */
function sortPrefix(a: Float64Array, n: number): void {
  if (n > 32) {
    a.subarray(0, n).sort();
    return;
  }
  for (let i = 1; i < n; i++) {
    const x = a[i]!;
    let j = i - 1;
    while (j >= 0 && a[j]! > x) {
      a[j + 1] = a[j]!;
      j--;
    }
    a[j + 1] = x;
  }
}

/**
 * A coordinate-wise rule: for every coordinate, the deltas' values there, sorted ascending
 * (float64, length deltas.length), reduced to one number. Shapes must have been checked.
 * `sorted` is scratch space reused across coordinates: read it, do not keep it.
 */
export function reduceCoordinates(deltas: readonly Weights[], reduce: (sorted: Float64Array) => number): Weights {
  const n = deltas.length;
  const first = deltas[0];
  if (first === undefined) throw new TributaryError('INTERNAL', 'no deltas to reduce');
  const scratch = new Float64Array(n);
  return first.map((tensor, t) => {
    const columns = deltas.map((d) => d[t]!);
    const out = new Float32Array(tensor.length);
    for (let i = 0; i < tensor.length; i++) {
      for (let k = 0; k < n; k++) scratch[k] = columns[k]![i]!;
      sortPrefix(scratch, n);
      out[i] = reduce(scratch);
    }
    return out;
  });
}

/** The median of sorted values: the middle one, or the mean of the middle two. */
export function sortedMedian(sorted: Float64Array): number {
  const n = sorted.length;
  const mid = n >> 1;
  return n % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** New arrays holding the same values. */
export function copyWeights(w: Weights): Weights {
  return w.map((t) => t.slice());
}
