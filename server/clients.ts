import type { ClientKind, RoundStart } from '../shared/protocol.ts';

/** A connected client, as the round loop sees it. */
export interface ClientSession {
  readonly id: string;
  readonly taskId: number;
  readonly kind: ClientKind;
  /** Long-term Ed25519 key the client joined with; it must sign the client's secure-round keys. */
  readonly identityKey: Uint8Array;
  /** TF.js backend the client trains on; empty until it reports ready. */
  backend: string;
  readonly shard: number | null;
  /** Samples the client holds; 0 until it reports ready. */
  samples: number;
  /** Global model version the client holds (-1: none). */
  cachedVersion: number;
  wireBytes(): number;
  sendRoundStart(start: RoundStart): void;
}

/** Who is connected, by task. The gateway adds and removes; the round loop reads. */
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

  readyFor(taskId: number): ClientSession[] {
    return this.ofTask(taskId).filter((s) => s.samples > 0);
  }

  /** The lowest demo shard no connected client of the task holds (wrapping when all are held). */
  freeShard(taskId: number, shards: number): number {
    const held = new Set(this.ofTask(taskId).map((s) => s.shard));
    for (let shard = 0; shard < shards; shard++) if (!held.has(shard)) return shard;
    return this.ofTask(taskId).length % shards;
  }
}
