import { Type, type Static } from 'typebox';
import { Aggregation, ModelPreset, Partition, PrivacyStatus, StrategyName } from './task.ts';

/**
 * What a trained model is and how it came about, served next to its weights
 * (`GET /api/tasks/:id/model/card`): enough to judge it, and to cite its privacy guarantee.
 */
export const ModelCard = Type.Object({
  task: Type.Object({ id: Type.Integer(), name: Type.String() }),
  model: Type.Object({ preset: ModelPreset, parameters: Type.Integer(), format: Type.Literal('tfjs-layers'), url: Type.String() }),
  data: Type.Object({ dataset: Type.String(), partition: Partition, shards: Type.Integer() }),
  rounds: Type.Object({ planned: Type.Integer(), completed: Type.Integer() }),
  /** Test accuracy and loss per round, on the server's held-out set. */
  metrics: Type.Array(Type.Object({ round: Type.Integer(), accuracy: Type.Number(), loss: Type.Number(), participants: Type.Integer(), epsilon: Type.Union([Type.Number(), Type.Null()]) })),
  aggregation: Type.Object({ rule: Aggregation, optimizer: StrategyName, secure: Type.Boolean(), bits: Type.Integer() }),
  /** Null: the task is not differentially private (the card says so rather than leave it out). */
  privacy: Type.Union([PrivacyStatus, Type.Null()]),
  /** Bytes of updates the devices sent over all rounds. */
  uploadBytes: Type.Integer(),
});
export type ModelCard = Static<typeof ModelCard>;
