import { cryptoRng } from '../../shared/privacy/noise.ts';
import { createRng, deriveSeed, shuffleInPlace, type Rng } from '../../shared/random.ts';
import { privacySampleRate, type TaskRecord } from '../../shared/protocol/task.ts';
import type { ClientRegistry, ClientSession } from '../gateway/clients.ts';

/** Over-selection: this much more than clientsPerRound, when there are that many ready. */
const OVER_SELECT = 0.3;
/** A round aims to end by this fraction of its deadline at the latest. */
const DEADLINE_MARGIN = 0.8;
/** Time a participant spends besides training (weights down, update up), assumed when sizing work. */
const OVERHEAD_MS = 1_500;
/** A fast device trains at most this many times its uniform share of work. */
const MAX_WORK_FACTOR = 2;
/** Participants whose planned work is this close to their uniform share keep that share (and runs stay reproducible). */
const TOLERANCE = 1.1;
/** Battery below this, not charging: left out. */
const LOW_BATTERY = 0.2;
/** New evidence's weight in a speed estimate. */
const SMOOTHING = 0.5;

/** Each item independently with probability q. */
function poissonSample<T>(items: readonly T[], q: number, rng: Rng): T[] {
  return items.filter(() => rng.next() < q);
}

/** A round's participants and each one's share of work. */
export interface RoundPlan {
  round: number;
  participants: ClientSession[];
  /** Updates that close the round; the others were over-selected to absorb drop-outs. */
  enough: number;
  /** Sample visits to train, by session id; absent: `localEpochs` full epochs. */
  budgets: Map<string, number>;
  /** How long the round is planned to take (0: not planned, uniform work). */
  targetMs: number;
}

/**
 * The shortest time in which devices training at `speed` each, none past its `cap`, do
 * `total` work together; Infinity if their caps do not add up to it. Σ min(speed·t, cap) is
 * piecewise linear in t: walk its breakpoints, the moments devices reach their caps.
 */
export function timeToTrain(devices: readonly { speed: number; cap: number }[], total: number): number {
  const byCapTime = [...devices].sort((a, b) => a.cap / a.speed - b.cap / b.speed);
  let capped = 0;
  let rate = devices.reduce((sum, d) => sum + d.speed, 0);
  for (const d of byCapTime) {
    const t = (total - capped) / rate;
    if (t <= d.cap / d.speed) return Math.max(0, t);
    capped += d.cap;
    rate -= d.speed;
  }
  return Number.POSITIVE_INFINITY;
}

/**
 * Capability-aware scheduling. Chooses a round's participants among the ready clients of a
 * task (over-selecting to absorb drop-outs; leaving out devices busy in a higher-priority
 * task's round, or low on battery), and moves work from the slow to the fast: the round
 * trains as many sample visits as uniform work would, in the least time, each device doing
 * what its measured speed allows in that time (up to twice its share). A device far slower
 * trains part of an epoch and nobody waits for the slowest. Speeds start from what devices
 * report and follow what they deliver.
 */
export class Scheduler {
  /** Samples per second, by task and device identity. */
  private readonly speeds = new Map<string, number>();
  /** Devices whose latest report the scheduler has not yet weighed against a round. */
  private readonly freshReports = new Set<string>();
  /** Tasks choosing participants right now, with their priority. */
  private readonly choosing = new Map<number, number>();

  constructor(private readonly clients: ClientRegistry) {}

  private key(client: ClientSession): string {
    return `${client.taskId}:${Buffer.from(client.identityKey).toString('hex')}`;
  }

  /** Best current estimate of a client's training speed, samples/s (0: unknown). */
  speedOf(client: ClientSession): number {
    return this.speeds.get(this.key(client)) ?? client.capabilities.throughput;
  }

  /** Ready clients a round of `task` may take. */
  eligible(task: TaskRecord): ClientSession[] {
    const busy = new Set<string>();
    const wanted = new Set<string>();
    for (const other of this.clients.all()) {
      if (other.taskId === task.id) continue;
      const identity = Buffer.from(other.identityKey).toString('hex');
      if (other.state === 'training' || other.state === 'uploading') busy.add(identity);
      // A device ready in a higher-priority task that is choosing now goes to that task.
      if ((this.choosing.get(other.taskId) ?? -1) > task.spec.priority && other.samples > 0 && other.connected && !other.paused) wanted.add(identity);
    }
    return this.clients.readyFor(task.id).filter((c) => {
      const identity = Buffer.from(c.identityKey).toString('hex');
      const battery = c.capabilities.battery;
      return !busy.has(identity) && !wanted.has(identity) && !(battery && !battery.charging && battery.level < LOW_BATTERY);
    });
  }

  /** Marks a task as choosing participants (so lower-priority tasks leave its devices alone) until `done`. */
  choose(task: TaskRecord): { done(): void } {
    this.choosing.set(task.id, task.spec.priority);
    return { done: () => this.choosing.delete(task.id) };
  }

  /**
   * Draws participants from `ready` and sizes their work: reproducibly from the task's seed,
   * or for a differentially private task by Poisson sampling at rate q from a CSPRNG — the
   * amplification the accountant counts holds only if nobody can predict the sample.
   */
  plan(task: TaskRecord, round: number, ready: ClientSession[]): RoundPlan {
    const { spec } = task;
    const ordered = [...ready].sort((a, b) => a.id.localeCompare(b.id));
    const privateTask = spec.privacy.mode !== 'off';
    if (!privateTask) shuffleInPlace(ordered, createRng(deriveSeed(spec.seed, 'select', round)));
    // Secure rounds cannot close early: every participant is in the masking graph.
    const extra = spec.secure || privateTask || spec.scheduling === 'uniform' ? 0 : Math.ceil(spec.clientsPerRound * OVER_SELECT);
    const participants = privateTask ? poissonSample(ordered, privacySampleRate(spec), cryptoRng()) : ordered.slice(0, spec.clientsPerRound + extra);
    // A private round needs every sampled user's update: closing early would let one user's presence push another's out.
    const enough = privateTask ? participants.length : Math.min(spec.clientsPerRound, participants.length);
    if (spec.scheduling === 'uniform') return { round, participants, enough, budgets: new Map(), targetMs: 0 };

    const share = (c: ClientSession) => c.samples * spec.hyper.localEpochs;
    const known = participants.filter((c) => this.speedOf(c) > 0);
    if (known.length === 0) return { round, participants, enough, budgets: new Map(), targetMs: 0 };
    const devices = known.map((c) => ({ client: c, share: share(c), speed: this.speedOf(c) / 1000, cap: MAX_WORK_FACTOR * share(c) }));
    const uniformMs = Math.max(...devices.map((d) => d.share / d.speed));
    // The uniform total in the least time; never longer than uniform work would take, nor past the deadline.
    const total = devices.reduce((sum, d) => sum + d.share, 0);
    const targetMs = Math.min(timeToTrain(devices, total), uniformMs, spec.roundDeadlineMs * DEADLINE_MARGIN - OVERHEAD_MS);
    const budgets = new Map<string, number>();
    for (const d of devices) {
      // Devices train whole batches: a budget in whole batches is what they will really do.
      const batches = Math.round(Math.min(d.cap, d.speed * targetMs) / spec.hyper.batchSize);
      const budget = Math.max(1, batches) * spec.hyper.batchSize;
      if (budget > d.share * TOLERANCE || budget < d.share / TOLERANCE) budgets.set(d.client.id, budget);
    }
    return { round, participants, enough, budgets, targetMs };
  }

  /**
   * What a round showed of a participant: it trained `budget` sample visits and delivered
   * after `elapsedMs`, or (delivered false) it was still at it at the deadline. A late
   * participant's estimate drops to what would have fit, halved, so its next share fits. A
   * delivery tells less than the device's own report of that round's training (the round's
   * time includes transfers), so it only counts for devices that sent none.
   */
  observe(client: ClientSession, budget: number, elapsedMs: number, delivered: boolean): void {
    const key = this.key(client);
    if (delivered && this.freshReports.delete(key)) return;
    const trainingMs = Math.max(100, elapsedMs - OVERHEAD_MS);
    const seen = (budget / trainingMs) * 1000;
    const current = this.speedOf(client);
    const estimate = delivered ? (current > 0 ? SMOOTHING * seen + (1 - SMOOTHING) * current : seen) : Math.min(current || seen, seen) / 2;
    this.speeds.set(key, estimate);
  }

  /** A device reported the speed it measured training (after each round): the most direct evidence. */
  reported(client: ClientSession, throughput: number): void {
    if (!(throughput > 0)) return;
    const key = this.key(client);
    this.speeds.set(key, throughput);
    this.freshReports.add(key);
  }
}
