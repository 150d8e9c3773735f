import { TributaryError, type ErrorCode } from '../errors.ts';

/**
 * A join the server refused for now rather than for good (its database or Redis did not
 * answer, or it is shedding load) is asked again on the same connection after a wait. A
 * crowd that reconnected together (a server process died, a load balancer restarted) and
 * was refused together must not come back together: each waits a random part of a
 * doubling span ("equal jitter").
 */

const TRANSIENT_REFUSALS: ReadonlySet<ErrorCode> = new Set(['DATABASE_UNAVAILABLE', 'REDIS_UNAVAILABLE', 'RATE_LIMITED']);

const FIRST_SPAN_MS = 1_000;
const LONGEST_SPAN_MS = 30_000;

export function isTransientRefusal(error: unknown): error is TributaryError {
  return error instanceof TributaryError && TRANSIENT_REFUSALS.has(error.code);
}

/** The wait before join attempt `retry + 1`: between half and all of min(30 s, 1 s · 2^retry). */
export function joinRetryDelayMs(retry: number, random: () => number = Math.random): number {
  const span = Math.min(LONGEST_SPAN_MS, FIRST_SPAN_MS * 2 ** Math.min(retry, 16));
  return span / 2 + random() * (span / 2);
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it is aborted. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
