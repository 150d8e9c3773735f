/** What the load bench's orchestrator and its worker processes tell each other (child_process IPC, JSON). */

/** One simulated client: its number (seeds its identity and its updates) and the loopback address it connects from. */
export interface ClientSlot {
  index: number;
  address: string;
}

export type ToWorker =
  | {
      type: 'start';
      url: string;
      taskId: number;
      /** The task's tensor lengths, as the server's model.json lists them. */
      lengths: number[];
      /** Samples each client reports (its FedAvg weight). */
      samples: number;
      clients: ClientSlot[];
      joinConcurrency: number;
      seed: number;
    }
  /** A round started: this fraction of the worker's joined clients drop their connection within `windowMs` and come back. */
  | { type: 'churn'; round: number; fraction: number; windowMs: number }
  /** Asks for the secure inputs summed by round (IPC with advanced serialization carries the typed arrays). */
  | { type: 'secure-sums' }
  | { type: 'stop' };

/** Counters a worker keeps, summed over its clients; sent with every report. */
export interface WorkerCounters {
  joined: number;
  /** Bytes read from and written to the clients' TCP sockets, framing included. */
  bytesIn: number;
  bytesOut: number;
  reconnects: number;
  /** Joins refused for now (database or Redis slow) and asked again on the same connection. */
  joinRetries: number;
  resumed: number;
  /** Joins that came back with a new session instead of the old one. */
  sessionsLost: number;
  roundConfigs: number;
  weightsReceived: number;
  uploads: number;
  errors: number;
  /** Errors by code (OTHER: not a coded error). */
  errorCodes: Record<string, number>;
  /** Connections lost, by socket.io's reason (the bench's own churn drops count as 'transport close'). */
  dropReasons: Record<string, number>;
}

export function zeroCounters(): WorkerCounters {
  return { joined: 0, bytesIn: 0, bytesOut: 0, reconnects: 0, joinRetries: 0, resumed: 0, sessionsLost: 0, roundConfigs: 0, weightsReceived: 0, uploads: 0, errors: 0, errorCodes: {}, dropReasons: {} };
}

/** One secure upload's input as its client made it: its levels (model words, then the rms statistic) and the round's ring. */
export interface SecureInput {
  round: number;
  levels: Uint32Array;
  /** Its FedAvg weight in the config. */
  weight: number;
  ringBits: number;
  clips: number[];
  sampleScale: number;
}

/** A worker's secure inputs of one round, summed: the levels mod 2^32 (a multiple of every ring), how many, their weights. */
export interface SecureRoundSum {
  round: number;
  levels: Uint32Array;
  inputs: number;
  weight: number;
  ringBits: number;
  clips: number[];
  sampleScale: number;
}

export type FromWorker =
  | { type: 'ready' }
  /** `lagP99Ms`: the worker's event-loop delay p99 over the second since its last report. */
  | { type: 'report'; counters: WorkerCounters; lagP99Ms: number; lastError?: string }
  /** Uploads whose last chunk the server acknowledged as complete since the last batch: round and ack time (ms since epoch). */
  | { type: 'uploaded'; uploads: Array<{ round: number; at: number }> }
  | { type: 'failed'; message: string }
  /** Answer to `secure-sums`. */
  | { type: 'secure-sums'; sums: SecureRoundSum[] };
