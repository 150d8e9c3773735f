import { describe, expect, it } from 'vitest';
import { TributaryError } from '../../shared/errors.ts';
import { isTransientRefusal, joinRetryDelayMs, pause } from '../../shared/protocol/join-retry.ts';

describe('join retries', () => {
  it('waits between half and all of a span that doubles from 1 s up to 30 s', () => {
    const spans = [0, 1, 2, 3, 4, 5, 6, 40].map((retry) => [joinRetryDelayMs(retry, () => 0), joinRetryDelayMs(retry, () => 1)]);
    expect(spans).toEqual([[500, 1_000], [1_000, 2_000], [2_000, 4_000], [4_000, 8_000], [8_000, 16_000], [15_000, 30_000], [15_000, 30_000], [15_000, 30_000]]);
  });

  it('spreads a crowd refused together over the span', () => {
    let state = 7;
    const random = () => ((state = (state * 48_271) % 2_147_483_647) / 2_147_483_647);
    const waits = Array.from({ length: 1_000 }, () => joinRetryDelayMs(3, random));
    const buckets = new Set(waits.map((w) => Math.floor((w - 4_000) / 400)));
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(4_000);
    expect(Math.max(...waits)).toBeLessThan(8_000);
    expect(buckets.size).toBe(10); // every tenth of the span is used
  });

  it('asks again only after refusals that say "not now"', () => {
    expect(['DATABASE_UNAVAILABLE', 'REDIS_UNAVAILABLE', 'RATE_LIMITED'].map((code) => isTransientRefusal(new TributaryError(code as 'RATE_LIMITED')))).toEqual([true, true, true]);
    expect(['NOT_ENROLLED', 'TASK_NOT_FOUND', 'SERVER_KEY_MISMATCH', 'INTERNAL'].map((code) => isTransientRefusal(new TributaryError(code as 'INTERNAL')))).toEqual([false, false, false, false]);
    expect(isTransientRefusal(new Error('DATABASE_UNAVAILABLE'))).toBe(false);
  });

  it('pauses until aborted, with the abort reason', async () => {
    const controller = new AbortController();
    const paused = pause(60_000, controller.signal);
    controller.abort(new Error('dropped'));
    await expect(paused).rejects.toThrow('dropped');
    await expect(pause(0, new AbortController().signal)).resolves.toBeUndefined();
  });
});
