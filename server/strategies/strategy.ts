import type { Weights } from '../../shared/ml/aggregate.ts';
import type { StrategyName } from '../../shared/protocol/task.ts';

/**
 * A server optimizer. The round loop hands it the sample-weighted mean of the round's
 * updates (the pseudo-gradient of Reddi et al. 2021, with the sign of a step) and gets
 * back the next global weights. One file per strategy; FedProx lives on the client.
 */
export interface Strategy {
  readonly name: StrategyName;
  step(global: Weights, meanDelta: Weights, round: number): Promise<Weights>;
  /** The optimizer's memory (momentum, moments), checkpointed with the model: a restarted server steps on exactly. */
  state(): Weights;
  restore(state: Weights): void;
}
