import { RESP_TYPES } from 'redis';
import { FENCED_SET, leaseKey } from './leader-lease.ts';
import { timed, type RedisClient } from './redis.ts';

/**
 * What the processes running one task share in Redis, besides the leader lease:
 *
 * - `members`: each process's heartbeat with how many of the task's clients are ready on
 *   it (a hash, one field a process), from which the leader sizes a round;
 * - `plan`: the round the leader runs now, and each process's share of its participants,
 *   written under the leader's fencing token so a deposed leader cannot overwrite it;
 * - `partial:<plan>:<process>`: what each process collected of that round, a RunningSum of
 *   its clients' updates (a secure round: its SecAgg+ group's ring sum) with its tallies,
 *   for the leader to merge.
 *
 * Every key is state, not a message: a process that missed a change reads it on its next
 * poll, and after a Redis restart that lost them the leader writes the plan again and the
 * processes their heartbeats, while the round in flight times out and runs again.
 */

export interface Member {
  processId: string;
  /** The task's clients ready on that process: connected, reported ready, not paused. */
  ready: number;
  /** The samples those clients hold, summed: a secure round weighs every group's inputs by the cohort's mean. */
  samples: number;
  /** When it last reported (its clock, ms since epoch). */
  at: number;
}

/** One round as the leader runs it: each process selects `quotas[processId]` participants among its own clients. */
export interface RoundPlan {
  taskId: number;
  round: number;
  /** Unique per attempt: `<fencing token>.<round>.<attempt>`; partials name the plan they answer. */
  planId: string;
  /** The model version participants train from (round − 1); a process behind loads that checkpoint first. */
  version: number;
  /** When collection ends everywhere, ms since epoch. */
  deadline: number;
  quotas: Record<string, number>;
  /** Secure rounds: what every group's clients divide their samples by (the cohort's mean), so the groups' sums add up. */
  sampleScale?: number;
}

/** A member is gone once its heartbeat is this old. */
export const MEMBER_TIMEOUT_MS = 10_000;
/** Moving partials (megabytes) may take this long; a write is then tried again, PARTIAL_RETRY_MS later. */
const PARTIAL_TIMEOUT_MS = 15_000;
const PARTIAL_RETRY_MS = 500;
/** Partials outlive any round that could read them. */
const PARTIAL_TTL_MS = 10 * 60_000;

const key = (taskId: number, part: string) => `tributary:task:${taskId}:${part}`;

export class TaskBoard {
  private readonly binary: RedisClient;

  constructor(private readonly redis: RedisClient) {
    this.binary = redis.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }) as unknown as RedisClient;
  }

  async heartbeat(taskId: number, member: Member): Promise<void> {
    await timed(this.redis.hSet(key(taskId, 'members'), member.processId, JSON.stringify({ ready: member.ready, samples: member.samples, at: member.at })));
  }

  /** Members heard from within MEMBER_TIMEOUT_MS of `now`; older entries are removed. */
  async members(taskId: number, now = Date.now()): Promise<Member[]> {
    const all = await timed(this.redis.hGetAll(key(taskId, 'members')));
    const alive: Member[] = [];
    const stale: string[] = [];
    for (const [processId, value] of Object.entries(all)) {
      const { ready, samples, at } = JSON.parse(value) as Omit<Member, 'processId'>;
      if (now - at > MEMBER_TIMEOUT_MS) stale.push(processId);
      else alive.push({ processId, ready, samples, at });
    }
    if (stale.length > 0) await timed(this.redis.hDel(key(taskId, 'members'), stale));
    return alive;
  }

  async leave(taskId: number, processId: string): Promise<void> {
    await timed(this.redis.hDel(key(taskId, 'members'), processId));
  }

  /** Publishes the plan if `token` still holds the task's lease; false if it does not. */
  async putPlan(plan: RoundPlan, token: number): Promise<boolean> {
    const written = await timed(this.redis.eval(FENCED_SET, { keys: [leaseKey(plan.taskId), key(plan.taskId, 'plan')], arguments: [String(token), JSON.stringify(plan)] }));
    return written === 1;
  }

  async plan(taskId: number): Promise<RoundPlan | undefined> {
    const value = await timed(this.redis.get(key(taskId, 'plan')));
    return value ? (JSON.parse(value) as RoundPlan) : undefined;
  }

  /**
   * Hands a partial in, trying again until `until` (ms since epoch): it is megabytes, which
   * a loaded process or Redis takes longer than a command's usual timeout to move, and a
   * partial that never arrives costs the whole round. Writing it twice is harmless.
   */
  async putPartial(taskId: number, planId: string, processId: string, bytes: Uint8Array, until: number): Promise<void> {
    const value = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (;;) {
      try {
        await timed(this.redis.set(key(taskId, `partial:${planId}:${processId}`), value, { expiration: { type: 'PX', value: PARTIAL_TTL_MS } }), Math.max(PARTIAL_RETRY_MS, Math.min(PARTIAL_TIMEOUT_MS, until - Date.now())));
        return;
      } catch (error) {
        if (Date.now() + PARTIAL_RETRY_MS >= until) throw error;
        await new Promise((resolve) => setTimeout(resolve, PARTIAL_RETRY_MS));
      }
    }
  }

  /** The partials of `processIds` for the plan that are in so far. */
  async partials(taskId: number, planId: string, processIds: readonly string[]): Promise<Map<string, Uint8Array>> {
    if (processIds.length === 0) return new Map();
    const values = (await timed(this.binary.mGet(processIds.map((p) => key(taskId, `partial:${planId}:${p}`))), PARTIAL_TIMEOUT_MS)) as unknown as (Buffer | null)[];
    const found = new Map<string, Uint8Array>();
    values.forEach((value, i) => value && found.set(processIds[i]!, new Uint8Array(value)));
    return found;
  }
}
