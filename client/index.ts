/**
 * `tributary/client`: the SDK's names in every runtime, defined here once. This module is
 * the entry where neither condition applies; the `browser` entry (client/browser/sdk.ts,
 * bundled as /sdk/tributary.js) and the `node` entry (client/node/index.ts) re-export it
 * and add their runtime's helpers.
 */
export { FederatedClient } from './federated-client.ts';
export type { ActivatedBackend, ClientEvents, Enrollment, FederatedClientOptions, SecurePhase } from './types.ts';
export type { DataInput, DataProvider, RawSample } from './data-input.ts';
export { Trainer, type TrainResult } from './trainer.ts';
export { activateBackend, preferredBackends } from './backend.ts';
export { TributaryError, type ErrorCode } from '../shared/errors.ts';
export type { KeyPair } from '../shared/crypto/sodium.ts';
export type { LabelledSet } from '../shared/data/dataset.ts';
export type { TaskRecord, TaskSpec } from '../shared/protocol/task.ts';
