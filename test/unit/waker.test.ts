import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Waker } from '../../server/rounds/waker.ts';

/** Sleeps on `waker` and reports whether the sleep has ended. */
function sleeping(waker: Waker, ms: number): () => boolean {
  let ended = false;
  void waker.sleep(ms).then(() => (ended = true));
  return () => ended;
}

/** Lets the promise callbacks queued so far run (no timers advance). */
const flush = () => Promise.resolve().then(() => undefined);

describe('Waker', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('ends a sleep at its timeout', async () => {
    const ended = sleeping(new Waker(), 1_000);
    await vi.advanceTimersByTimeAsync(999);
    expect(ended()).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(ended()).toBe(true);
  });

  it('ends a sleep early on a wake, clearing its timer', async () => {
    const waker = new Waker();
    const ended = sleeping(waker, 60_000);
    await vi.advanceTimersByTimeAsync(10);
    waker.wake();
    await flush();
    expect(ended()).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('keeps a wake with nobody asleep for the next sleep, which then ends at once', async () => {
    const waker = new Waker();
    waker.wake();
    const ended = sleeping(waker, 60_000);
    await flush();
    expect(ended()).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('keeps a kept wake for one sleep only, however many wakes came', async () => {
    const waker = new Waker();
    waker.wake();
    waker.wake();
    await waker.sleep(60_000);
    const second = sleeping(waker, 1_000);
    await flush();
    expect(second()).toBe(false);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(second()).toBe(true);
  });

  it('does not keep the wake that ended a sleep: the next sleep waits', async () => {
    const waker = new Waker();
    const first = sleeping(waker, 60_000);
    waker.wake();
    await flush();
    expect(first()).toBe(true);
    const second = sleeping(waker, 1_000);
    await flush();
    expect(second()).toBe(false);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(second()).toBe(true);
  });

  it('keeps a wake that comes after a sleep timed out', async () => {
    const waker = new Waker();
    const first = sleeping(waker, 1_000);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(first()).toBe(true);
    waker.wake();
    const second = sleeping(waker, 60_000);
    await flush();
    expect(second()).toBe(true);
  });
});
