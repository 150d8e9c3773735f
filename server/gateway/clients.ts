import { equalBytes } from '../../shared/crypto/sodium.ts';
import type { ErrorBody } from '../../shared/errors.ts';
import type { Capabilities, ClientKind, ClientView, RoundStart } from '../../shared/protocol/events.ts';

/** The live connection a session talks through; it changes when the client reconnects. */
export interface ClientLink {
  /** Bytes read from this connection so far, framing included. */
  bytesRead(): number;
  /** Resolves once the client says the config arrived, or its answer is overdue, or the connection closed. */
  sendRoundStart(start: RoundStart): Promise<void>;
  /** Tells the client why, and closes the connection so that it does not reconnect by itself. */
  drop(error: ErrorBody): void;
}

export interface SessionInit {
  id: string;
  taskId: number;
  kind: ClientKind;
  identityKey: Uint8Array;
  shard: number | null;
  resumeToken: Uint8Array;
}

/**
 * A client of a task, as the round loop sees it. A session outlives its connection: a
 * client that reconnects within the grace period takes it back with its resume token, and
 * with it its place in the round, its half-finished upload and the round config it missed.
 */
export class ClientSession {
  readonly id: string;
  readonly taskId: number;
  readonly kind: ClientKind;
  /** Long-term Ed25519 key the client joined with; it must sign the client's secure-round keys. */
  readonly identityKey: Uint8Array;
  readonly shard: number | null;
  /** The secret that lets the client take this session back after a reconnect. */
  readonly resumeToken: Uint8Array;
  /** TF.js backend the client trains on; empty until it reports ready. */
  backend = '';
  /** Samples the client holds; 0 until it reports ready. */
  samples = 0;
  /** Global model version the client holds (-1: none). */
  cachedVersion = -1;
  /** Joined but not to be selected. */
  paused = false;
  /** What the device reported it can do (throughput 0 until it says). */
  capabilities: Capabilities = { throughput: 0 };
  /** Rounds it delivered an update to. */
  roundsDelivered = 0;
  /** Its latest round, as the dashboard shows it. */
  lastRound: ClientView['lastRound'];
  /** The round whose upload has begun (for the dashboard's state column). */
  private uploadingRound: number | undefined;
  private link: ClientLink | undefined;
  private bytesOfEarlierLinks = 0;
  /** The round config sent last and not yet settled: a client that was away gets it again. */
  private pendingStart: RoundStart | undefined;

  constructor(init: SessionInit) {
    this.id = init.id;
    this.taskId = init.taskId;
    this.kind = init.kind;
    this.identityKey = init.identityKey;
    this.shard = init.shard;
    this.resumeToken = init.resumeToken;
  }

  get connected(): boolean {
    return this.link !== undefined;
  }

  attach(link: ClientLink): void {
    this.detach();
    this.link = link;
  }

  /** After a resume: the round config the client may have missed while it was away. */
  resendRoundStart(): void {
    if (this.pendingStart) void this.link?.sendRoundStart(this.pendingStart);
  }

  /** The connection dropped; `link`, when given, must be the current one (a stale socket closing late changes nothing). */
  detach(link?: ClientLink): void {
    if (!this.link || (link && link !== this.link)) return;
    this.bytesOfEarlierLinks += this.link.bytesRead();
    this.link = undefined;
  }

  /** The session is over for this connection (revoked, taken over): its client is told why and cut off. */
  dropLink(error: ErrorBody): void {
    const link = this.link;
    if (!link) return;
    // Detached first: the socket's close then finds no session of its own to put in its grace period.
    this.detach();
    link.drop(error);
  }

  isLink(link: ClientLink): boolean {
    return this.link === link;
  }

  /** Bytes read from this client over all its connections. */
  wireBytes(): number {
    return this.bytesOfEarlierLinks + (this.link?.bytesRead() ?? 0);
  }

  /** Sends a config (kept for a resume); resolves when it arrived, or there is no use waiting for it. */
  sendRoundStart(start: RoundStart): Promise<void> {
    this.pendingStart = start;
    return this.link?.sendRoundStart(start) ?? Promise.resolve();
  }

  /** The round is over for this client (uploaded, or the round ended): nothing to re-send. */
  settleRound(round: number): void {
    if (this.pendingStart?.round === round) this.pendingStart = undefined;
    if (this.uploadingRound === round) this.uploadingRound = undefined;
  }

  /** A chunk of its update for `round` arrived; `complete` when it was the last. */
  noteUpload(round: number, complete: boolean): void {
    this.uploadingRound = complete ? undefined : round;
    if (complete) this.roundsDelivered++;
  }

  get state(): ClientView['state'] {
    if (!this.connected) return 'away';
    if (this.paused) return 'paused';
    if (this.uploadingRound !== undefined) return 'uploading';
    return this.pendingStart ? 'training' : 'idle';
  }

  view(): ClientView {
    const { throughput, adapter, battery } = this.capabilities;
    return {
      id: this.id,
      kind: this.kind,
      backend: this.backend,
      samples: this.samples,
      throughput,
      state: this.state,
      shard: this.shard,
      roundsDelivered: this.roundsDelivered,
      ...(this.lastRound ? { lastRound: this.lastRound } : {}),
      ...(adapter ? { adapter } : {}),
      ...(battery ? { battery } : {}),
    };
  }
}

/** Who is joined, by task. The gateway adds and removes; the round loop reads. */
export class ClientRegistry {
  private readonly sessions = new Map<string, ClientSession>();

  add(session: ClientSession): void {
    this.sessions.set(session.id, session);
  }

  remove(id: string): ClientSession | undefined {
    const session = this.sessions.get(id);
    this.sessions.delete(id);
    return session;
  }

  get(id: string): ClientSession | undefined {
    return this.sessions.get(id);
  }

  all(): ClientSession[] {
    return [...this.sessions.values()];
  }

  ofTask(taskId: number): ClientSession[] {
    return [...this.sessions.values()].filter((s) => s.taskId === taskId);
  }

  /** The task's sessions of one identity key: at most one, since a join ends the key's others. */
  withIdentity(taskId: number, identityKey: Uint8Array): ClientSession[] {
    return this.ofTask(taskId).filter((s) => equalBytes(s.identityKey, identityKey));
  }

  /** Connected clients of the task that reported ready: the ones a round may select. */
  readyFor(taskId: number): ClientSession[] {
    return this.ofTask(taskId).filter((s) => s.samples > 0 && s.connected && !s.paused);
  }

  /**
   * A demo shard no joined client of the task holds, wrapping when all are held. Shards
   * of planned sizes (`bySize`, largest first): the largest free one for a high-capacity
   * node (`heavy`), the smallest for others, so heavy shards wait for GPU nodes. Otherwise
   * the lowest free one.
   */
  freeShard(taskId: number, shards: number, bySize?: readonly number[], heavy = false): number {
    const held = new Set(this.ofTask(taskId).map((s) => s.shard));
    const ascending = Array.from({ length: shards }, (_, i) => i);
    const order = bySize ? (heavy ? bySize : [...bySize].reverse()) : ascending;
    return order.find((shard) => !held.has(shard)) ?? this.ofTask(taskId).length % shards;
  }
}
