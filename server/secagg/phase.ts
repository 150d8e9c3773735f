import { TributaryError } from '../../shared/errors.ts';

/**
 * One phase of a multi-step round: a message is expected from each of a set of
 * participants; the phase ends when all have answered or dropped, or at its deadline.
 */
export class Phase<T> {
  private readonly pending: Set<number>;
  private readonly received = new Map<number, T>();
  private readonly timer: ReturnType<typeof setTimeout>;
  private resolve!: (received: Map<number, T>) => void;
  private closed = false;
  readonly done: Promise<Map<number, T>>;

  constructor(
    readonly name: string,
    expected: Iterable<number>,
    deadline: number,
  ) {
    this.pending = new Set(expected);
    this.done = new Promise((resolve) => (this.resolve = resolve));
    this.timer = setTimeout(() => this.close(), Math.max(0, deadline - Date.now()));
    if (this.pending.size === 0) this.close();
  }

  submit(index: number, value: T): void {
    if (this.closed) throw new TributaryError('SECAGG_OUT_OF_PHASE', `the ${this.name} phase has ended`);
    if (!this.pending.delete(index)) {
      throw new TributaryError('SECAGG_OUT_OF_PHASE', `participant ${index} is not expected in the ${this.name} phase (or already answered)`);
    }
    this.received.set(index, value);
    if (this.pending.size === 0) this.close();
  }

  drop(index: number): void {
    if (this.pending.delete(index) && this.pending.size === 0) this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.resolve(new Map([...this.received].sort((a, b) => a[0] - b[0])));
  }
}

/** A value the round publishes later: every waiting ack resolves (or fails) together. */
export class Announcement<T> {
  private settle!: { resolve: (value: T) => void; reject: (error: Error) => void };
  readonly value: Promise<T>;

  constructor() {
    this.value = new Promise<T>((resolve, reject) => (this.settle = { resolve, reject }));
    this.value.catch(() => {}); // nobody may be waiting when a round aborts
  }

  publish(value: T): void {
    this.settle.resolve(value);
  }

  fail(error: Error): void {
    this.settle.reject(error);
  }
}
