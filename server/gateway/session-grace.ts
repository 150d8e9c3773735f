import type { ErrorBody } from '../../shared/errors.ts';
import type { SessionDirectory } from '../cluster/session-directory.ts';
import type { Coordinator } from '../rounds/coordinator.ts';
import type { ClientRegistry, ClientSession } from './clients.ts';

/**
 * Sessions whose connection dropped, each waiting out the grace period for its client to
 * come back; shared by all connections, since the client returns on a new one.
 */
export class SessionGrace {
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(
    private readonly graceMs: number,
    private readonly clients: ClientRegistry,
    private readonly coordinator: Coordinator,
    /** Cluster mode: where other processes look sessions up; an ended one leaves it. */
    private readonly directory?: SessionDirectory,
  ) {}

  /** The session's connection dropped: it ends unless a connection takes it back within the grace period. */
  wait(session: ClientSession): void {
    this.coordinator.runner(session.taskId)?.clientAway(session.id);
    this.timers.set(session.id, setTimeout(() => {
      if (!session.connected) this.end(session);
    }, this.graceMs));
  }

  /** A connection took the session back. */
  resumed(session: ClientSession): void {
    this.stopTimer(session);
  }

  /**
   * Another connection takes the session back while its old one still looks live (the server
   * has not seen it drop): the old one is told why and closed, and the round sees the client
   * away, as after a disconnect (a secure round's answers went to the old connection).
   */
  relink(session: ClientSession, why: ErrorBody): void {
    if (!session.connected) return;
    session.dropLink(why);
    this.coordinator.runner(session.taskId)?.clientAway(session.id);
  }

  /** The session ends now, not after a grace period: its client is told why and its connection closed. */
  endNow(session: ClientSession, why: ErrorBody): void {
    session.dropLink(why);
    this.end(session);
  }

  /** The session ends: its client is out of the task until it joins afresh. */
  end(session: ClientSession): void {
    this.stopTimer(session);
    this.clients.remove(session.id);
    this.coordinator.runner(session.taskId)?.clientLeft(session.id);
    this.directory?.release(session.id).catch(() => {}); // an unreachable Redis lets the record expire instead
  }

  private stopTimer(session: ClientSession): void {
    clearTimeout(this.timers.get(session.id));
    this.timers.delete(session.id);
  }
}
