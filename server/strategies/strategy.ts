import type { Weights } from '../../shared/ml/aggregate.ts';
import type { CombineRuleName, StrategyName, UpdateBits } from '../../shared/protocol/task.ts';

/**
 * A task's server-side rule is two small steps: a combine rule turns a round's updates into
 * one step (mean, median, trimmed mean, Krum …: combine/, one file per rule), and a server
 * optimizer moves the model by that step (FedAvg, FedAvgM, FedAdam, FedYogi: optimizers/).
 * Cross-cutting behaviour (norm bounding, central DP) wraps a Strategy and returns one
 * (wrappers/), so it composes with every rule instead of subclassing any.
 */

/** One client's update as a combine rule sees it. */
export interface ClientUpdate {
  clientId: string;
  delta: Weights;
  /** FedAvg weight: the samples it trained on (async mode: discounted for staleness already). */
  weight: number;
}

/** A round's combined step and what it took to get there. */
export interface Combined {
  delta: Weights;
  /** Clients whose updates the rule left out of the step (Krum's rejects, clipped outliers are not left out). */
  discarded: string[];
}

/**
 * A round's updates folded as they arrive, so the round holds O(m) numbers, not O(n·m):
 * for rules whose step needs nothing but the running sum (the mean, and the wrappers
 * around it). Rules that need every update (median, Krum …) have no fold.
 */
export interface UpdateFold {
  /** Folds one decoded update. */
  add(update: ClientUpdate): void;
  /** Folds an update straight from its wire encoding; undefined where a wrapper must see the decoded update (to clip it). */
  readonly addEncoded: ((bytes: Uint8Array, bits: UpdateBits, weight: number) => void) | undefined;
  /** Updates folded so far. */
  readonly count: number;
  /** The round's combined step; called once, when the round is applied. */
  finish(): Combined;
}

export interface CombineRule {
  readonly name: CombineRuleName;
  combine(updates: readonly ClientUpdate[]): Combined;
  /** A streaming fold over a model of these tensor lengths, where the rule allows one. */
  fold?(lengths: readonly number[]): UpdateFold;
  /** Rules with memory (centered clipping centres on the last step) checkpoint it here. */
  state?(): Weights;
  restore?(state: Weights): void;
}

/** How the combined step moves the model. */
export interface ServerOptimizer {
  readonly name: StrategyName;
  step(global: Weights, delta: Weights, round: number): Promise<Weights>;
  /** The optimizer's memory (momentum, moments), checkpointed with the model: a restarted server steps on exactly. */
  state(): Weights;
  restore(state: Weights): void;
}

/** What a round record says about how the strategy ran. */
export interface StrategyReport {
  /** The combine rule and its wrappers, e.g. "dp-central(mean)" or "norm-bound(median)". */
  combine: string;
  optimizer: StrategyName;
  /** Central DP: the clip norm used this round (it adapts when a target quantile is set). */
  clipNorm?: number;
}

export interface Strategy {
  /** Combines the round's updates (plain and async rounds; a secure round's sum arrives combined). */
  combine(updates: readonly ClientUpdate[], round: number): Combined;
  /** A fold for the round's updates as they arrive; undefined when the rule needs them all at once. */
  fold(lengths: readonly number[], round: number): UpdateFold | undefined;
  /** Moves the model by a combined step. */
  step(global: Weights, delta: Weights, round: number): Promise<Weights>;
  /** How this round ran, read after `combine`. */
  report(): StrategyReport;
  /** Everything that must survive a restart (optimizer moments, the last step, an adaptive clip), as tensors. */
  state(): Weights;
  restore(state: Weights): void;
}
