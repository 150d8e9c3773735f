/**
 * `tributary/client`: the federated client for any runtime. In browsers the package's
 * `browser` condition gives the bundled SDK (client/browser/sdk.ts) with its helpers.
 */
export { FederatedClient, type ActivatedBackend, type ClientEvents, type DataProvider, type FederatedClientOptions, type SecurePhase } from './federated-client.ts';
export { Trainer, type TrainResult } from './trainer.ts';
export { activateBackend, preferredBackends } from './backend.ts';
export type { LabelledSet } from '../shared/data/dataset.ts';
export type { TaskRecord, TaskSpec } from '../shared/protocol/task.ts';
