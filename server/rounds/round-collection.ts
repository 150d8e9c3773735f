import { TributaryError } from '../../shared/errors.ts';
import type { ChunkAck, ChunkMeta } from '../../shared/protocol/events.ts';
import { ChunkedUpload } from './upload.ts';

export interface AcceptedUpdate<T> {
  clientId: string;
  /** The decoded payload: a delta in plain rounds, a masked vector in secure ones. */
  value: T;
  samples: number;
  wireBytes: number;
  /** When the last chunk arrived (ms since epoch). */
  receivedAt: number;
}

/** What one round collected: an immutable batch for aggregation. */
export interface CollectedRound<T> {
  accepted: readonly AcceptedUpdate<T>[];
  /** Left the round (disconnected and did not come back in time). */
  dropped: readonly string[];
  /** Still in the round at the deadline: a sync round discards what they send after it. */
  late: readonly string[];
  rejected: readonly string[];
}

export interface CollectionOptions<T> {
  taskId: number;
  round: number;
  /** The attempt whose chunks it takes (attemptOf its aggregator key). */
  attempt: string;
  participants: readonly string[];
  deadline: number;
  /** Close as soon as this many updates are in (over-selected rounds); default: all participants. */
  enough?: number;
  maxBytes: number;
  maxChunkBytes: number;
  /**
   * Decodes and validates a complete payload, and may fold it into a running aggregate
   * (then T is only what the round still needs of it); throws a TributaryError on bad
   * input, having folded nothing.
   */
  decode: (bytes: Uint8Array, from: { clientId: string; samples: number }) => T;
  /** Largest sample count each participant may claim (what it reported when ready). */
  maxSamples: (clientId: string) => number;
  /** Bytes read so far from the client's connection, framing included. */
  wireBytes: (clientId: string) => number;
}

/**
 * The collecting phase of one round: accepts chunked uploads from the selected
 * participants until each has delivered, dropped out or been rejected, or the deadline
 * passes. It never touches the model; the round loop aggregates what it returns.
 */
export class RoundCollection<T> {
  private readonly pending: Set<string>;
  private readonly uploads = new Map<string, ChunkedUpload>();
  private readonly accepted: AcceptedUpdate<T>[] = [];
  private readonly dropped: string[] = [];
  private readonly late: string[] = [];
  private readonly rejected: string[] = [];
  private readonly startBytes = new Map<string, number>();
  /** The first chunk's metadata of each accepted upload: its last chunk sent again is acknowledged again. */
  private readonly delivered = new Map<string, ChunkMeta>();
  private readonly timer: ReturnType<typeof setTimeout>;
  private finished = false;
  private resolve!: (round: CollectedRound<T>) => void;
  readonly done: Promise<CollectedRound<T>>;

  constructor(private readonly options: CollectionOptions<T>) {
    this.pending = new Set(options.participants);
    for (const id of options.participants) this.startBytes.set(id, options.wireBytes(id));
    this.done = new Promise((resolve) => (this.resolve = resolve));
    this.timer = setTimeout(() => this.finish(), Math.max(0, options.deadline - Date.now()));
    if (this.pending.size === 0) this.finish();
  }

  get round(): number {
    return this.options.round;
  }

  get receivedCount(): number {
    return this.delivered.size;
  }

  isParticipant(clientId: string): boolean {
    return this.options.participants.includes(clientId);
  }

  acceptChunk(clientId: string, meta: ChunkMeta, data: Uint8Array): ChunkAck {
    const o = this.options;
    // A client whose final ack was lost to a disconnect resends the last chunk on resuming (even after the close).
    const done = this.delivered.get(clientId);
    if (done && sameUpload(done, meta) && meta.index === meta.count - 1) return { next: meta.count, complete: true };
    if (this.finished || meta.taskId !== o.taskId || meta.round !== o.round) {
      throw new TributaryError('ROUND_NOT_ACTIVE', `task ${meta.taskId} round ${meta.round}`);
    }
    // Sealed for an attempt of this round that was given up: refused, and the client keeps its place in this one.
    if (meta.attempt !== o.attempt) throw new TributaryError('ROUND_NOT_ACTIVE', `round ${meta.round} runs again: attempt ${meta.attempt} is over`);
    if (!this.isParticipant(clientId)) throw new TributaryError('NOT_A_PARTICIPANT');
    if (!this.pending.has(clientId)) {
      throw new TributaryError('UPLOAD_DUPLICATE', 'this client is already done with the round');
    }
    if (meta.samples > o.maxSamples(clientId)) {
      throw new TributaryError('BAD_REQUEST', `claims ${meta.samples} samples, holds ${o.maxSamples(clientId)}`);
    }
    let upload = this.uploads.get(clientId);
    if (!upload) {
      if (meta.index !== 0) throw new TributaryError('UPLOAD_OUT_OF_ORDER', 'an upload starts at chunk 0');
      upload = new ChunkedUpload(meta, { maxBytes: o.maxBytes, maxChunkBytes: o.maxChunkBytes });
      this.uploads.set(clientId, upload);
    }
    const ack = upload.accept(meta, data);
    if (ack.complete) this.complete(clientId, upload);
    return ack;
  }

  /** A participant that disconnected is out of this round. */
  drop(clientId: string): void {
    if (!this.pending.delete(clientId)) return;
    this.dropped.push(clientId);
    this.uploads.delete(clientId);
    this.settleIfDone();
  }

  /** Ends collection now (task stopped). */
  abort(): void {
    this.finish();
  }

  private complete(clientId: string, upload: ChunkedUpload): void {
    this.pending.delete(clientId);
    this.uploads.delete(clientId);
    try {
      const value = this.options.decode(upload.bytes, { clientId, samples: upload.first.samples });
      const wireBytes = this.options.wireBytes(clientId) - (this.startBytes.get(clientId) ?? 0);
      this.accepted.push({ clientId, value, samples: upload.first.samples, wireBytes, receivedAt: Date.now() });
      this.delivered.set(clientId, upload.first);
    } catch (error) {
      // A bad update takes its sender out of the round; everyone else carries on.
      this.rejected.push(clientId);
      this.settleIfDone();
      throw error;
    }
    this.settleIfDone();
  }

  private settleIfDone(): void {
    if (this.pending.size === 0 || this.accepted.length >= (this.options.enough ?? Infinity)) this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    for (const id of this.pending) this.late.push(id);
    this.pending.clear();
    this.resolve({ accepted: [...this.accepted], dropped: [...this.dropped], late: [...this.late], rejected: [...this.rejected] });
    this.accepted.length = 0; // the round has them now; a closed collection only re-acknowledges

  }
}

function sameUpload(a: ChunkMeta, b: ChunkMeta): boolean {
  return a.taskId === b.taskId && a.round === b.round && a.count === b.count && a.totalBytes === b.totalBytes && a.samples === b.samples;
}
