import type { Weights } from '../shared/ml/aggregate.ts';
import type { KeyPair } from '../shared/crypto/sodium.ts';
import type { LabelledSet } from '../shared/data/dataset.ts';
import type { ClientKind } from '../shared/protocol/events.ts';
import type { TaskRecord } from '../shared/protocol/task.ts';
import type { TrainResult } from './trainer.ts';
import type { DataInput } from './data-input.ts';

/** The SDK's contract: what a FederatedClient takes and what it reports, apart from how it does it. */


export interface FederatedClientOptions {
  /** Server URL, e.g. `http://127.0.0.1:8080`. */
  server: string;
  taskId: number;
  /**
   * The device's data: raw samples of the task's schema (table rows, images, text), as an
   * array or an async iterable, or a provider of encoded samples (a demo shard, say).
   */
  data: DataInput;
  kind?: ClientKind;
  /**
   * Activates the TF.js backend for the task's model (before any model is built) and
   * returns its name, or its name with what it measured (throughput, GPU adapter).
   */
  activateBackend: (task: TaskRecord) => Promise<string | ActivatedBackend>;
  /** Reads the device's battery, where it can (browsers): reported so a scheduler can spare it. */
  battery?: () => Promise<{ level: number; charging: boolean } | undefined>;
  /** A session to take back, e.g. kept across a page reload (see `resumeCredentials`). */
  resume?: { clientId: string; token: Uint8Array };
  /** Ask for a specific demo data shard. */
  shard?: number;
  /** Seeds the stochastic rounding of this client's updates. */
  seed?: number;
  /** Train at this fraction of full speed (0 < throttle ≤ 1), idling between steps: spares a battery. */
  throttle?: number;
  /**
   * How this device's identity gets enrolled in the task before it joins: with a token an
   * operator minted, or by the task's open enrollment. Omit it once the identity is enrolled.
   */
  enrollment?: Enrollment;
  /**
   * The server's Ed25519 key as pinned at an earlier first contact. A server showing
   * another key is refused (SERVER_KEY_MISMATCH); without one, the first key seen is pinned.
   */
  pinnedServerKey?: Uint8Array;
  /**
   * The client's long-term Ed25519 identity; it signs the client's keys in secure rounds.
   * Persist it (the Node edge client keeps it in a file); without one a fresh key is made per client.
   */
  identity?: KeyPair;
  /**
   * Research hook: sees each trained update before it is quantized and sent, and returns
   * what to send instead. `tributary client --attack` uses it to play a malicious client in
   * robustness experiments; an honest deployment leaves it unset.
   */
  transformUpdate?: UpdateTransform;
}

/** What `transformUpdate` gets: the round's trained delta and the means to train others. */
export interface TrainedUpdate {
  round: number;
  delta: Weights;
  /** The device's training data this round. */
  data: LabelledSet;
  /** Trains from the round's global model on `set` (same hyper-parameters) and returns the delta. */
  retrain(set: LabelledSet): Promise<Weights>;
}

export type UpdateTransform = (update: TrainedUpdate) => Promise<Weights> | Weights;

/** With a token an operator minted, or by the task's open enrollment. */
export type Enrollment = { token: string } | 'open';

export interface ActivatedBackend {
  name: string;
  /** Training samples per second on the task's model, measured here. */
  throughput?: number;
  adapter?: string;
  /** The device's memory, MiB. */
  memoryMb?: number;
}

/** Where a secure round has got to on this client; a crash-test can act on each. */
export type SecurePhase = 'advertised' | 'shared' | 'uploaded' | 'revealed';

export interface ClientEvents {
  joined: (info: {
    clientId: string;
    /** True after a reconnect that kept the session (and the round in progress). */
    resumed: boolean;
    shard: number | null;
    task: TaskRecord;
    samples: number;
    backend: string;
    serverKey: Uint8Array;
    serverFingerprint: string;
  }) => void;
  'round-start': (info: { round: number; modelVersion: number; deadline: number; downloadedWeights: boolean }) => void;
  /** The connection dropped; the client reconnects by itself (with backoff) and resumes. */
  disconnected: (info: { reason: string }) => void;
  /** The server refused the join for now (its database or Redis away, or shedding load); it is asked again after `retryInMs` on the same connection. */
  'join-deferred': (info: { code: string; message: string; retryInMs: number }) => void;
  /** A round attempt given up: superseded by a newer config, or lost with the connection. */
  'round-abandoned': (info: { round: number; reason: string }) => void;
  progress: (info: { round: number; fraction: number; loss: number }) => void;
  uploaded: (info: { round: number; bytes: number; chunks: number; train: Omit<TrainResult, 'weights'> }) => void;
  'secure-phase': (info: { round: number; phase: SecurePhase }) => void;
  /** Federated evaluation: this device scored the model it was sent on its held-out samples (sent with its update). */
  evaluated: (info: { round: number; modelVersion: number; samples: number; metrics: Record<string, number> }) => void;
  /** A new global model; the server's scores of it (null, metrics empty, when it holds no test set). */
  'model-updated': (info: { version: number; accuracy: number | null; loss: number | null; metrics: Record<string, number> }) => void;
  finished: (info: { status: 'completed' | 'stopped' }) => void;
  error: (error: Error) => void;
}
