import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import type { BenchOptions } from '../options.ts';

/** What one load run is: how many simulated clients, how they are spread, and what the task asks of them. */
export interface LoadOptions {
  clients: number;
  perRound: number;
  rounds: number;
  /** Worker processes driving the simulated clients. */
  workers: number;
  /** Fraction of the clients that drop their connection (and resume) in each round. */
  churn: number;
  /** Clients sharing one loopback source address: under the server's per-address caps (64 sockets, 30 enrollments a minute). */
  perAddress: number;
  /** Simulated clients joining at once, per worker. */
  joinConcurrency: number;
  /** The task's round deadline. */
  deadlineMs: number;
  /** Server processes: 1 is the embedded server (SQLite); more, a local cluster (Redis, PostgreSQL, nginx in front). */
  processes: number;
  /** SecAgg+ rounds: the simulated clients run the protocol, and the bench checks each published model bit for bit. */
  secure: boolean;
  /** The servers' `--heartbeat-timeout`: how long a connection may leave a heartbeat unanswered. */
  heartbeatTimeoutS: number;
  out: string;
}

const DEFAULTS = { clients: 10_000, perRound: 1_000, rounds: 20, churn: 0.1, perAddress: 25, joinConcurrency: 64, deadlineMs: 600_000, heartbeatTimeoutS: 20 };

/** The arguments after `load` on the command line (`tributary bench load …`). */
export function argsAfterName(argv: readonly string[] = process.argv): string[] {
  const at = argv.indexOf('load');
  return at >= 0 ? argv.slice(at + 1) : [];
}

/**
 * The load bench's options. `tributary bench` declares only --clients, --rounds and --out
 * (and fills in --clients 10 when it is missing), so the bench reads its own flags from the
 * command line after its name: `tributary bench load --clients 2000 --per-round 200`.
 */
export function loadOptions(bench: Partial<BenchOptions>, args: readonly string[]): LoadOptions {
  const { values } = parseArgs({
    args: [...args],
    strict: false,
    options: {
      clients: { type: 'string' },
      'per-round': { type: 'string' },
      rounds: { type: 'string' },
      workers: { type: 'string' },
      churn: { type: 'string' },
      'per-address': { type: 'string' },
      'join-concurrency': { type: 'string' },
      'deadline-s': { type: 'string' },
      processes: { type: 'string' },
      secure: { type: 'boolean' },
      'heartbeat-timeout': { type: 'string' },
      out: { type: 'string' },
    },
  });
  const number = (name: string, fallback: number, valid: (x: number) => boolean): number => {
    const raw = values[name];
    if (raw === undefined || typeof raw === 'boolean') return fallback;
    const x = Number(raw);
    if (!valid(x)) throw new Error(`--${name} ${raw}: not a valid value`);
    return x;
  };
  const count = (x: number) => Number.isInteger(x) && x >= 1;
  const clients = number('clients', DEFAULTS.clients, count);
  const options: LoadOptions = {
    clients,
    perRound: number('per-round', Math.min(DEFAULTS.perRound, clients), count),
    rounds: number('rounds', bench.rounds ?? DEFAULTS.rounds, count),
    // One core is the server's; the simulator gets the rest, at least two processes so one GC pause does not stall every client.
    workers: number('workers', Math.max(2, Math.min(8, availableParallelism() * 2, Math.ceil(clients / 1_000))), count),
    churn: number('churn', DEFAULTS.churn, (x) => x >= 0 && x <= 1),
    perAddress: number('per-address', DEFAULTS.perAddress, (x) => count(x) && x <= 60),
    joinConcurrency: number('join-concurrency', DEFAULTS.joinConcurrency, count),
    deadlineMs: number('deadline-s', DEFAULTS.deadlineMs / 1000, (x) => x >= 1) * 1000,
    processes: number('processes', 1, (x) => count(x) && x <= 16),
    secure: values.secure === true,
    heartbeatTimeoutS: number('heartbeat-timeout', DEFAULTS.heartbeatTimeoutS, (x) => x > 0),
    out: typeof values.out === 'string' ? values.out : bench.out ?? 'bench-results',
  };
  if (options.perRound > options.clients) throw new Error(`--per-round ${options.perRound} is more than --clients ${options.clients}`);
  if (options.perRound > 10_000) throw new Error('--per-round: a task takes at most 10,000 clients a round (TaskSpec.clientsPerRound)');
  return options;
}
