import type { ParticipantRecord, TaskRecord } from '../../shared/protocol/task.ts';
import type { ClientSession } from '../gateway/clients.ts';
import type { SecureRound } from '../secagg/secure-round.ts';
import type { RoundBase } from './dispatch.ts';
import type { GlobalModel } from './global-model.ts';
import type { CollectedRound, CollectionOptions } from './round-collection.ts';
import type { CoordinatorOptions } from './runner.ts';
import type { RoundPlan } from './scheduler.ts';
import type { EvaluationPlan } from './federated-evaluation.ts';

/** What one sync round, plain (plain-round.ts) or secure (secagg/masked-round.ts), gets from the runner that owns it. */
export interface RoundRun {
  task: TaskRecord;
  global: GlobalModel;
  plan: RoundPlan;
  /** When the round began, ms since epoch. */
  startedAt: number;
  /** Who evaluates the sent model this round, and how many metric sums uploads carry; undefined: no evaluation. */
  evaluation: EvaluationPlan | undefined;
  options: CoordinatorOptions;
  /** Signs and sends each participant its config, and tells watchers the round started. */
  announce(base: RoundBase): void;
  /** Collects sealed uploads from `uploaders`; the runner routes their chunks here meanwhile. */
  collect<T>(request: { aggregatorKey: Uint8Array; uploaders: readonly ClientSession[]; deadline: number; maxBytes: number; decode: CollectionOptions<T>['decode']; enough?: number }): Promise<CollectedRound<T>>;
  /** The round's secure protocol, for the gateway to route participants' phase messages to (undefined: none). */
  runProtocol(protocol: SecureRound | undefined): void;
  /** Each participant's outcome, recorded for the round and weighed by the scheduler. */
  account(collected: CollectedRound<unknown>): ParticipantRecord[];
}
