import type { Weights } from '../../shared/ml/aggregate.ts';
import type { CombineRule, ServerOptimizer, Strategy } from './strategy.ts';

/**
 * Several parts' states in one list of tensors, as a checkpoint holds it: a header tensor
 * with each part's tensor count, then the parts in order.
 */
export function packStates(parts: readonly Weights[]): Weights {
  return [Float32Array.from(parts.map((p) => p.length)), ...parts.flat()];
}

/** The parts `packStates` wrote, or undefined when `state` has another layout (an older checkpoint): start afresh. */
export function unpackStates(state: Weights, parts: number): Weights[] | undefined {
  const header = state[0];
  if (!header || header.length !== parts) return undefined;
  const counts = Array.from(header);
  if (counts.some((c) => !Number.isInteger(c) || c < 0) || counts.reduce((a, b) => a + b, 0) !== state.length - 1) return undefined;
  const out: Weights[] = [];
  let at = 1;
  for (const c of counts) {
    out.push(state.slice(at, at + c));
    at += c;
  }
  return out;
}

/** A combine rule followed by a server optimizer: the base every wrapper starts from. */
export function composeStrategy(rule: CombineRule, optimizer: ServerOptimizer): Strategy {
  return {
    combine: (updates) => rule.combine(updates),
    fold: (lengths) => rule.fold?.(lengths),
    step: (global, delta, round) => optimizer.step(global, delta, round),
    report: () => ({ combine: rule.name, optimizer: optimizer.name }),
    state: () => packStates([rule.state?.() ?? [], optimizer.state()]),
    restore(state) {
      const parts = unpackStates(state, 2);
      if (!parts) return;
      rule.restore?.(parts[0]!);
      optimizer.restore(parts[1]!);
    },
  };
}
