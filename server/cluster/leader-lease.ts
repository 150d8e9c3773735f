import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { RedisClient } from './redis.ts';

/**
 * One leader per task across the cluster: the process holding `tributary:task:<id>:leader`
 * runs that task's rounds; the others keep trying to take the lease over.
 *
 * A lease alone does not make writes safe. A leader can stall — a GC pause, a stopped VM,
 * a slow disk — past its lease's expiry, lose it to another process, and then wake up and
 * write as if it still led, without ever having run a line of code in between that could
 * notice. So each acquisition also takes a fencing token that only ever grows across
 * holders, and every write a leader makes carries its token and is checked where it
 * lands: in Redis by a script (`fencedSet`), in the database later by refusing a token
 * lower than the last one it committed. The paused old leader's token is then stale, and
 * its late write is refused however late it comes.
 *
 * The token survives a Redis restart without persistence, which forgets the fence
 * counter: it is `max(INCR fence, Redis's clock in ms, the highest token this lease has
 * seen + 1)`, so after an empty restart the next token is still above every token handed
 * out before, as long as the Redis host's clock has not been set back past them. (The
 * database guard, which persists the last committed token, will close that gap too.)
 */

/** A server, as a lease holder and cluster member: host, pid and a nonce (pids get reused, and a test runs several servers in one process). */
export function newProcessId(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

/** This process's default holder id. */
export const processHolderId = newProcessId();

export const leaseKey = (taskId: number | string) => `tributary:task:${taskId}:leader`;
export const fenceKey = (taskId: number | string) => `tributary:task:${taskId}:fence`;

/** Why a lease was lost: another holder (or nobody, after a Redis restart) has it; or it could not be renewed within its ttl. */
export type LeaseLoss = 'taken' | 'expired';

export interface LeaderLeaseOptions {
  redis: RedisClient;
  taskId: number | string;
  /** The lease's time to live; it is renewed every ttl/3. */
  ttlMs: number;
  /** Defaults to `processHolderId`; two leases on one task in one process need their own. */
  holderId?: string;
  /** How often a non-leader tries to acquire; defaults to ttl/3. */
  retryMs?: number;
  onAcquired?: (token: number) => void;
  onLost?: (reason: LeaseLoss) => void;
  log?: Logger;
}

// The lease's value is "<token> <holder>", so one GET tells both who holds it and with which token.
const ACQUIRE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
local now = redis.call('TIME')
local floor = math.max(tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000), tonumber(ARGV[3]) + 1)
if token < floor then
  token = floor
  redis.call('SET', KEYS[2], string.format('%.0f', token))
end
redis.call('SET', KEYS[1], string.format('%.0f', token) .. ' ' .. ARGV[1], 'PX', ARGV[2])
return token`;

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** Writes KEYS[2] only while KEYS[1] (the lease) holds token ARGV[1]. Other fenced writes follow this shape. */
export const FENCED_SET = `
local lease = redis.call('GET', KEYS[1])
if not lease or string.sub(lease, 1, #ARGV[1] + 1) ~= ARGV[1] .. ' ' then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1`;

export class LeaderLease {
  readonly #o: LeaderLeaseOptions & { holderId: string; retryMs: number };
  readonly #keys: string[];
  /** Redis may count the ttl from a little later than we do; we give the lease up this much earlier. */
  readonly #drift: number;
  readonly #commandTimeout: number;
  #token: number | undefined;
  #highestSeen = 0;
  #validUntil = 0;
  #running = false;
  #tick: NodeJS.Timeout | undefined;
  #expiry: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> = Promise.resolve();

  constructor(options: LeaderLeaseOptions) {
    this.#o = { holderId: processHolderId, retryMs: Math.max(10, Math.floor(options.ttlMs / 3)), ...options };
    this.#keys = [leaseKey(options.taskId), fenceKey(options.taskId)];
    this.#drift = Math.ceil(options.ttlMs * 0.01) + 2;
    this.#commandTimeout = Math.max(50, Math.floor(options.ttlMs / 3));
  }

  /** The token of the lease held now, if the ttl since the last renewal has not run out. */
  get token(): number | undefined {
    return this.holds() ? this.#token : undefined;
  }

  /** Whether this process may still consider itself leader (a local check; writes are fenced besides). */
  holds(): boolean {
    return this.#token !== undefined && performance.now() < this.#validUntil;
  }

  /** Starts trying to acquire, and renewing once acquired. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule(0);
  }

  /** Stops, and gives the lease up at once (compare-and-delete) so another process takes over without waiting out the ttl. */
  async release(): Promise<void> {
    this.#halt();
    await this.#inFlight;
    const token = this.#token;
    this.#forget();
    if (token === undefined) return;
    try {
      await this.#eval(RELEASE, [this.#keys[0]!], [this.#value(token)]);
    } catch (error) {
      this.#o.log?.warn({ err: error, task: this.#o.taskId }, 'Could not release the leader lease; it expires on its own');
    }
  }

  /** Stops without releasing or telling anyone, as a killed or frozen process would: for tests of takeover. */
  abandon(): void {
    this.#halt();
  }

  /** Whether `token` is the token of the lease as Redis holds it now. */
  async isCurrent(token: number): Promise<boolean> {
    const value = await this.#timed(this.#o.redis.withCommandOptions({ timeout: this.#commandTimeout }).get(this.#keys[0]!));
    return typeof value === 'string' && value.startsWith(`${token} `);
  }

  /** Sets `key` to `value` only if `token` is still the lease's token, atomically; false when refused. */
  async fencedSet(token: number, key: string, value: string): Promise<boolean> {
    return (await this.#eval(FENCED_SET, [this.#keys[0]!, key], [String(token), value])) === 1;
  }

  #schedule(delayMs: number): void {
    if (!this.#running) return;
    this.#tick = setTimeout(() => {
      this.#inFlight = this.#step().then(() => this.#schedule(this.#token === undefined ? this.#o.retryMs : this.#o.ttlMs / 3));
    }, delayMs);
  }

  async #step(): Promise<void> {
    const sentAt = performance.now();
    try {
      if (this.#token === undefined) await this.#acquire(sentAt);
      else await this.#renew(this.#token, sentAt);
    } catch (error) {
      // Unreachable or slow: a holder keeps its lease until the expiry timer says otherwise.
      this.#o.log?.debug({ err: error, task: this.#o.taskId }, 'Leader lease step failed');
    }
  }

  async #acquire(sentAt: number): Promise<void> {
    const reply = await this.#eval(ACQUIRE, this.#keys, [this.#o.holderId, String(this.#o.ttlMs), String(this.#highestSeen)]);
    if (typeof reply !== 'number' || reply === 0) return;
    this.#highestSeen = Math.max(this.#highestSeen, reply);
    if (!this.#running || sentAt + this.#o.ttlMs - this.#drift <= performance.now()) {
      // Stopped meanwhile, or the reply came so late that the lease is as good as gone: hand it back.
      this.#giveBack(reply);
      return;
    }
    this.#token = reply;
    this.#extendTo(sentAt);
    this.#o.log?.info({ task: this.#o.taskId, token: reply }, 'Acquired the leader lease');
    this.#notify(() => this.#o.onAcquired?.(reply));
  }

  async #renew(token: number, sentAt: number): Promise<void> {
    const reply = await this.#eval(RENEW, [this.#keys[0]!], [this.#value(token), String(this.#o.ttlMs)]);
    if (this.#token !== token) return; // lost (expired) while the reply was on its way
    if (reply === 1) this.#extendTo(sentAt);
    else this.#lose('taken');
  }

  /** The lease counts as ours until ttl after the command that set or renewed it was sent. */
  #extendTo(sentAt: number): void {
    this.#validUntil = sentAt + this.#o.ttlMs - this.#drift;
    this.#armExpiry();
  }

  /** Loses the lease once its validity has run out. Timers may fire a millisecond early (whole-ms loop clock): then it checks again. */
  #armExpiry(): void {
    clearTimeout(this.#expiry);
    if (this.#token === undefined) return;
    const left = this.#validUntil - performance.now();
    if (left <= 0) return this.#lose('expired');
    this.#expiry = setTimeout(() => this.#armExpiry(), Math.ceil(left) + 1);
  }

  #lose(reason: LeaseLoss): void {
    // An expired lease may still be ours in Redis (renewals were slow, not refused): free it for the others.
    if (reason === 'expired' && this.#token !== undefined) this.#giveBack(this.#token);
    this.#forget();
    this.#o.log?.warn({ task: this.#o.taskId, reason }, 'Lost the leader lease');
    this.#notify(() => this.#o.onLost?.(reason));
  }

  #forget(): void {
    this.#token = undefined;
    this.#validUntil = 0;
    clearTimeout(this.#expiry);
  }

  #halt(): void {
    this.#running = false;
    clearTimeout(this.#tick);
    clearTimeout(this.#expiry);
  }

  /** A compare-and-delete nobody waits for: it frees the key sooner than its ttl would, when it gets through. */
  #giveBack(token: number): void {
    this.#eval(RELEASE, [this.#keys[0]!], [this.#value(token)]).catch(() => {});
  }

  #notify(listener: () => void): void {
    try {
      listener();
    } catch (error) {
      this.#o.log?.error({ err: error, task: this.#o.taskId }, 'Leader lease listener threw');
    }
  }

  #value(token: number): string {
    return `${token} ${this.#o.holderId}`;
  }

  /** A script, bounded in time: a command queued while Redis is away is dropped after the timeout, not run late. */
  #eval(script: string, keys: string[], args: string[]): Promise<unknown> {
    return this.#timed(this.#o.redis.withCommandOptions({ timeout: this.#commandTimeout }).eval(script, { keys, arguments: args }));
  }

  /** node-redis times a command out only until it is written; a written one whose reply never comes is cut off here. */
  #timed<T>(reply: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not answer within ${this.#commandTimeout} ms`)), this.#commandTimeout);
    });
    return Promise.race([reply, timeout]).finally(() => clearTimeout(timer));
  }
}
