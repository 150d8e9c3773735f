import { Type, type Static, type TSchema } from 'typebox';
import { concatBytes, utf8 } from '../crypto/sodium.ts';
import type { ErrorBody } from '../errors.ts';
import {
  AdvertiseRequest,
  Bytes,
  ConfirmRequest,
  RevealRequest,
  RoundRef,
  ShareRequest,
  type RelayedConfirmations,
  type RelayedShares,
  type SecureRoundConfig,
} from '../secagg/protocol.ts';
import type { Hyper, ParticipantRecord, RoundRecord, TaskRecord, TaskStatus, UpdateBits } from './task.ts';

/**
 * The socket protocol, defined once: schemas for what clients send (the server validates
 * every message against them) and event maps used as generics on both ends.
 */

/** Every request a client sends carries an ack; the answer is a value or a coded error. */
export type Reply<T> = { ok: true; value: T } | { ok: false; error: ErrorBody };
export type Ack<T> = (reply: Reply<T>) => void;

export const ClientKind = Type.Union([Type.Literal('edge'), Type.Literal('browser'), Type.Literal('gpu')]);
export type ClientKind = Static<typeof ClientKind>;

const TaskId = Type.Integer({ minimum: 1, maximum: 2 ** 31 });
const RoundNumber = Type.Integer({ minimum: 1, maximum: 2 ** 31 });

/** Asks for a one-time nonce that the next join's proof signs. */
export const ChallengeRequest = Type.Object({}, { additionalProperties: false });

export const JoinRequest = Type.Object(
  {
    taskId: TaskId,
    kind: ClientKind,
    /** Ed25519 signature by the identity key over joinProofMessage(nonce, taskId, kind): the client holds the enrolled key. */
    proof: Bytes(64),
    /** Ask for a specific data shard (demo data); the server assigns one otherwise. */
    shard: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
    /** The client's long-term Ed25519 public key: it signs the client's per-round keys in secure rounds. */
    identityKey: Bytes(32),
    /** After a reconnect: the session to take back, with the token its join returned. */
    resume: Type.Optional(
      Type.Object({ clientId: Type.String({ minLength: 1, maxLength: 64 }), token: Bytes(32) }, { additionalProperties: false }),
    ),
  },
  { additionalProperties: false },
);
export type JoinRequest = Static<typeof JoinRequest>;

/** What a join proof signs: the connection's one-time nonce, bound to the task and client kind. */
export function joinProofMessage(nonce: Uint8Array, taskId: number, kind: ClientKind): Uint8Array {
  return concatBytes(utf8(`tributary/join/v1/${taskId}/${kind}/`), nonce);
}

export interface JoinReply {
  clientId: string;
  /** Present this (with the client id) when joining again after a reconnect to keep the session. */
  resumeToken: Uint8Array;
  /** The session was taken back: its round, upload progress and model version carried over. */
  resumed: boolean;
  /** The server's Ed25519 public key: clients pin it at first contact. */
  serverKey: Uint8Array;
  task: TaskRecord;
  /** The demo data shard this client stands for, or null when it brings its own data. */
  shard: number | null;
}

/** What a device can do, as it reports when ready: the scheduler sizes its work by it. */
export const Capabilities = Type.Object(
  {
    /** Training throughput measured on the task's model here, samples per second. */
    throughput: Type.Number({ minimum: 0, maximum: 1e9 }),
    memoryMb: Type.Optional(Type.Number({ minimum: 0, maximum: 1e8 })),
    /** Browsers that expose it: battery level 0..1 and whether it is charging. */
    battery: Type.Optional(Type.Object({ level: Type.Number({ minimum: 0, maximum: 1 }), charging: Type.Boolean() }, { additionalProperties: false })),
    /** The GPU adapter (vendor, architecture) of WebGPU browsers and GPU nodes. */
    adapter: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);
export type Capabilities = Static<typeof Capabilities>;

export const ReadyRequest = Type.Object(
  {
    taskId: TaskId,
    samples: Type.Integer({ minimum: 1, maximum: 100_000_000 }),
    /** The TF.js backend the client trains on. */
    backend: Type.String({ minLength: 1, maxLength: 32 }),
    /** Global model version the client already holds; the server skips sending it again. */
    cachedVersion: Type.Integer({ minimum: -1, maximum: 2 ** 31 }),
    /** A paused client stays joined but is not selected (the contributor pressed pause). */
    paused: Type.Optional(Type.Boolean()),
    capabilities: Type.Optional(Capabilities),
  },
  { additionalProperties: false },
);
export type ReadyRequest = Static<typeof ReadyRequest>;

export const ChunkMeta = Type.Object(
  {
    taskId: TaskId,
    round: RoundNumber,
    index: Type.Integer({ minimum: 0, maximum: 65_535 }),
    count: Type.Integer({ minimum: 1, maximum: 65_536 }),
    totalBytes: Type.Integer({ minimum: 1, maximum: 2 ** 31 }),
    samples: Type.Integer({ minimum: 1, maximum: 100_000_000 }),
    /** The attempt the upload answers (attemptOf its config's aggregator key): a round run again refuses the chunks of the attempt before. */
    attempt: Type.String({ pattern: '^[0-9a-f]{16}$' }),
  },
  { additionalProperties: false },
);
export type ChunkMeta = Static<typeof ChunkMeta>;

/** A round attempt's name on the wire: its aggregator key's first 8 bytes, in hex (a fresh key every attempt). */
export function attemptOf(aggregatorKey: Uint8Array): string {
  return Array.from(aggregatorKey.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join('');
}

export interface ChunkAck {
  /** Index of the next chunk the server expects (resume point). */
  next: number;
  complete: boolean;
}

export interface RoundStart {
  taskId: number;
  round: number;
  modelVersion: number;
  /** Wall-clock deadline (ms since epoch) for the update to be fully uploaded. */
  deadline: number;
  bits: UpdateBits;
  clipSigma: number;
  hyper: Hyper;
  /**
   * This participant's share of work: sample visits to train (a fraction of an epoch on a
   * slow device, several on a fast one), sized by the scheduler to finish in time; null
   * trains `hyper.localEpochs` full epochs.
   */
  budget: number | null;
  chunkBytes: number;
  /** Global weights (float32, little-endian), or null when the client's cached version is current. */
  weights: Uint8Array | null;
  /** This round's X25519 aggregator key: every update is sealed to it, so only the aggregator reads it. */
  aggregatorKey: Uint8Array;
  /** Present in secure rounds: participants, graph, threshold, clips and phase deadlines. */
  secure: SecureRoundConfig | null;
  /**
   * Federated evaluation: how many metric sums every upload of this round carries (0: the
   * round does not evaluate), and whether this participant computes them, on its held-out
   * data with the model of `modelVersion`, or sends zeros (shared/codec/metric-sums.ts).
   */
  metricSums: number;
  evaluate: boolean;
  /** Ed25519 signature by the server over all of the above (shared/round-signature.ts). */
  signature: Uint8Array;
}

export interface RoundEnd {
  taskId: number;
  round: number;
  modelVersion: number;
  /** The server's scores of the new model; null (and metrics empty) when it holds no test set. */
  accuracy: number | null;
  loss: number | null;
  metrics: Record<string, number>;
  participants: number;
}

export interface TaskStatusEvent {
  taskId: number;
  status: TaskStatus;
}

export interface ClientToServerEvents {
  'auth:challenge': (request: Static<typeof ChallengeRequest>, ack: Ack<{ nonce: Uint8Array }>) => void;
  'task:join': (request: JoinRequest, ack: Ack<JoinReply>) => void;
  'client:ready': (request: ReadyRequest, ack: Ack<{ selected: boolean }>) => void;
  'update:chunk': (meta: ChunkMeta, data: Uint8Array, ack: Ack<ChunkAck>) => void;
  // Secure rounds: each ack arrives when its phase ends, carrying what the phase produced.
  'secagg:advertise': (request: AdvertiseRequest, ack: Ack<{ advertised: Uint8Array }>) => void;
  'secagg:share': (request: ShareRequest, ack: Ack<RelayedShares>) => void;
  'secagg:survivors': (request: RoundRef, ack: Ack<{ survivors: number[] }>) => void;
  'secagg:confirm': (request: ConfirmRequest, ack: Ack<RelayedConfirmations>) => void;
  'secagg:reveal': (request: RevealRequest, ack: Ack<{ accepted: true }>) => void;
}

/** A client event's name. */
export type ClientEvent = keyof ClientToServerEvents;
/** What an event's ack carries on success, whatever the event's arity. */
export type AckValue<E extends ClientEvent> = ClientToServerEvents[E] extends (...args: [...infer _, Ack<infer T>]) => void ? T : never;
/** An event's first argument: its request body. */
export type EventBody<E extends ClientEvent> = Parameters<ClientToServerEvents[E]>[0];

/** The schema of every client event's payload: the gateway validates each message against its entry before any handler runs. */
export const CLIENT_EVENT_SCHEMAS = {
  'auth:challenge': ChallengeRequest,
  'task:join': JoinRequest,
  'client:ready': ReadyRequest,
  'update:chunk': ChunkMeta,
  'secagg:advertise': AdvertiseRequest,
  'secagg:share': ShareRequest,
  'secagg:survivors': RoundRef,
  'secagg:confirm': ConfirmRequest,
  'secagg:reveal': RevealRequest,
} satisfies Record<keyof ClientToServerEvents, TSchema>;

export interface ServerToClientEvents {
  /** `received` is answered as the config arrives (before it is checked): the server sends model downloads a window at a time by these answers. */
  'round:start': (start: RoundStart, received: () => void) => void;
  'round:end': (end: RoundEnd) => void;
  'task:status': (status: TaskStatusEvent) => void;
  /** A coded error for a message that came without an ack to answer through, or why the server is closing this connection (revoked, replaced). */
  'server:error': (error: ErrorBody) => void;
}

/** What the server shows watchers (the demo, the dashboard) on the /admin namespace. */
export interface RoundStartedEvent {
  taskId: number;
  round: number;
  participants: string[];
  deadline: number;
}

export interface UploadProgressEvent {
  taskId: number;
  round: number;
  received: number;
  expected: number;
}

/** A round that ended without touching the model (too few survivors, a forged share, ...). */
export interface RoundAbortedEvent {
  taskId: number;
  round: number;
  error: ErrorBody;
}

/** A connected client as the dashboard shows it. */
export interface ClientView {
  id: string;
  kind: ClientKind;
  backend: string;
  samples: number;
  /** Samples per second: measured by the device, then from its rounds. */
  throughput: number;
  state: 'idle' | 'training' | 'uploading' | 'paused' | 'away';
  shard: number | null;
  adapter?: string;
  battery?: { level: number; charging: boolean };
  /** Rounds this client delivered an update to, in this session. */
  roundsDelivered: number;
  /** Its latest round: the work it was given (null: full epochs), how long it took against the deadline, how it ended. */
  lastRound?: { round: number; budget: number | null; elapsedMs: number | null; deadlineMs: number; outcome: string };
}

/** Each participant of a completed round: speed, share of work, time against the deadline. */
export interface RoundParticipantsEvent {
  taskId: number;
  round: number;
  deadlineMs: number;
  participants: ParticipantRecord[];
}

export interface ClientsEvent {
  taskId: number;
  clients: ClientView[];
}

export interface AdminServerToClientEvents {
  'clients:update': (event: ClientsEvent) => void;
  'round:participants': (event: RoundParticipantsEvent) => void;
  'round:started': (event: RoundStartedEvent) => void;
  'round:aborted': (event: RoundAbortedEvent) => void;
  'round:upload': (event: UploadProgressEvent) => void;
  'round:complete': (record: RoundRecord) => void;
  'task:status': (status: TaskStatusEvent) => void;
}

export interface AdminClientToServerEvents {}

/** One line of the audit log, as `GET /api/audit` returns it. */
export interface AuditEntry {
  id: number;
  at: string;
  /** Who: a username, `client:<key fingerprint>`, or `system`. */
  actor: string;
  /** What, e.g. `login.failed`, `task.start`, `token.revoke`. */
  action: string;
  target: string;
  detail: Record<string, unknown>;
  ip: string;
}
