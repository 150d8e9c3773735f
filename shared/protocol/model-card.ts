import { Type, type Static } from 'typebox';
import { Aggregation, Evaluation, FederatedMetrics, Partition, PrivacyStatus, StrategyName } from './task.ts';
import { DataSchema } from '../data/schema.ts';

/**
 * What a trained model is and how it came about, served next to its weights
 * (`GET /api/tasks/:id/model/card`): enough to judge it, and to cite its privacy guarantee.
 */
export const ModelCard = Type.Object({
  task: Type.Object({ id: Type.Integer(), name: Type.String() }),
  /** `kind`: mlp, cnn, gru (built in, shaped by the schema) or layers (uploaded). */
  model: Type.Object({ kind: Type.String(), parameters: Type.Integer(), format: Type.Literal('tfjs-layers'), url: Type.String() }),
  /** The schema the model reads, and the built-in data set behind the task (or "own"). */
  data: Type.Object({ schema: DataSchema, dataset: Type.String(), partition: Partition, shards: Type.Integer() }),
  evaluation: Evaluation,
  rounds: Type.Object({ planned: Type.Integer(), completed: Type.Integer() }),
  /** Per round: the server's scores on its held-out set (empty without one) and the federated evaluation reported in it. */
  metrics: Type.Array(
    Type.Object({
      round: Type.Integer(),
      server: Type.Record(Type.String(), Type.Number()),
      federated: Type.Union([FederatedMetrics, Type.Null()]),
      participants: Type.Integer(),
      epsilon: Type.Union([Type.Number(), Type.Null()]),
    }),
  ),
  aggregation: Type.Object({ rule: Aggregation, optimizer: StrategyName, secure: Type.Boolean(), bits: Type.Integer() }),
  /** Null: the task is not differentially private (the card says so rather than leave it out). */
  privacy: Type.Union([PrivacyStatus, Type.Null()]),
  /** Bytes of updates the devices sent over all rounds. */
  uploadBytes: Type.Integer(),
});
export type ModelCard = Static<typeof ModelCard>;
