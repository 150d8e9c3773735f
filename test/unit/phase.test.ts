import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TributaryError } from '../../shared/errors.ts';
import { Announcement, Phase } from '../../server/secagg/phase.ts';
import { expectCode } from '../support/expect-code.ts';

const START = Date.UTC(2030, 0, 1);

/** A phase over `expected`, ending 30 s from START, and a view of whether it has ended. */
function phase(expected: number[] = [1, 2, 3]) {
  const p = new Phase<string>('share', expected, START + 30_000);
  let received: Map<number, string> | undefined;
  void p.done.then((r) => (received = r));
  return { p, received: () => received };
}

/** Lets the promise callbacks queued so far run (no timers advance). */
const flush = () => Promise.resolve().then(() => undefined);

describe('Phase', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('closes when every expected participant has answered, with what each sent', async () => {
    const { p, received } = phase();
    p.submit(1, 'one');
    p.submit(2, 'two');
    await flush();
    expect(received()).toBeUndefined();
    p.submit(3, 'three');
    await flush();
    expect(received()).toEqual(new Map([[1, 'one'], [2, 'two'], [3, 'three']]));
    expect(vi.getTimerCount()).toBe(0);
  });

  it('closes when the last pending participant drops, with the answers that came in', async () => {
    const { p, received } = phase();
    p.submit(2, 'two');
    p.drop(1);
    await flush();
    expect(received()).toBeUndefined();
    p.drop(3);
    await flush();
    expect(received()).toEqual(new Map([[2, 'two']]));
  });

  it('ignores the drop of a participant that already answered or was never expected', async () => {
    const { p, received } = phase([1, 2]);
    p.submit(1, 'one');
    p.drop(1);
    p.drop(9);
    await flush();
    expect(received()).toBeUndefined();
    p.submit(2, 'two');
    await flush();
    expect(received()).toEqual(new Map([[1, 'one'], [2, 'two']]));
  });

  it('closes at its deadline with the answers that came in', async () => {
    const { p, received } = phase();
    p.submit(3, 'three');
    await vi.advanceTimersByTimeAsync(29_999);
    expect(received()).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(received()).toEqual(new Map([[3, 'three']]));
  });

  it('closes at once when nobody is expected', async () => {
    const { received } = phase([]);
    await flush();
    expect(received()).toEqual(new Map());
    expect(vi.getTimerCount()).toBe(0);
  });

  it('answers a message after the phase closed with SECAGG_OUT_OF_PHASE', async () => {
    const { p } = phase();
    p.close();
    expectCode(() => p.submit(1, 'late'), 'SECAGG_OUT_OF_PHASE');
    await vi.advanceTimersByTimeAsync(30_000);
    expectCode(() => p.submit(2, 'later'), 'SECAGG_OUT_OF_PHASE');
  });

  it('answers a second message from the same participant with SECAGG_OUT_OF_PHASE, keeping the first', async () => {
    const { p, received } = phase([1, 2]);
    p.submit(1, 'first');
    expectCode(() => p.submit(1, 'second'), 'SECAGG_OUT_OF_PHASE');
    p.submit(2, 'two');
    await flush();
    expect(received()?.get(1)).toBe('first');
  });

  it('answers a participant it does not expect, or one that dropped, with SECAGG_OUT_OF_PHASE', () => {
    const { p } = phase();
    expectCode(() => p.submit(4, 'stranger'), 'SECAGG_OUT_OF_PHASE');
    p.drop(2);
    expectCode(() => p.submit(2, 'back again'), 'SECAGG_OUT_OF_PHASE');
  });

  it('hands its results over sorted by participant index, whatever order they came in', async () => {
    const { p, received } = phase([5, 1, 3, 2]);
    for (const i of [3, 5, 2]) p.submit(i, `v${i}`);
    p.drop(1);
    await flush();
    expect([...received()!.keys()]).toEqual([2, 3, 5]);
  });
});

describe('Announcement', () => {
  it('publishes one value to every waiter', async () => {
    const a = new Announcement<number[]>();
    const waiters = [a.value, a.value.then((v) => v), a.value.then((v) => v)];
    a.publish([4, 2]);
    for (const v of await Promise.all(waiters)) expect(v).toEqual([4, 2]);
  });

  it('fails every waiter with the same error', async () => {
    const a = new Announcement<number>();
    const waiters = [a.value.then(() => 'resolved'), a.value.then(() => 'resolved')];
    const error = new TributaryError('SECAGG_TOO_FEW_SHARES');
    a.fail(error);
    for (const outcome of await Promise.allSettled(waiters)) expect(outcome).toEqual({ status: 'rejected', reason: error });
  });

  it('keeps the first outcome: a later publish or fail changes nothing', async () => {
    const a = new Announcement<string>();
    a.publish('first');
    a.publish('second');
    a.fail(new Error('too late'));
    await expect(a.value).resolves.toBe('first');
  });

  it('raises no unhandled rejection when it fails with nobody waiting', async () => {
    const unhandled: unknown[] = [];
    const listener = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', listener);
    try {
      new Announcement<number>().fail(new TributaryError('TASK_NOT_RUNNING'));
      // Node reports unhandled rejections once the microtask queue has drained: give it a turn of the event loop.
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('unhandledRejection', listener);
    }
    expect(unhandled).toEqual([]);
  });

  it('still delivers the failure to a waiter that comes after it', async () => {
    const a = new Announcement<number>();
    a.fail(new TributaryError('TASK_NOT_RUNNING'));
    await expect(a.value).rejects.toMatchObject({ code: 'TASK_NOT_RUNNING' });
  });
});
