import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TributaryError } from '../../shared/errors.ts';
import type { ChunkMeta } from '../../shared/protocol/events.ts';
import { RoundCollection, type CollectedRound, type CollectionOptions } from '../../server/rounds/round-collection.ts';
import { expectCode } from '../support/expect-code.ts';

const START = Date.UTC(2030, 0, 1);
const DEADLINE_MS = 10_000;
/** A payload starting with this byte fails to decode. */
const POISON = 0xff;

/** Decodes a payload into its bytes as numbers; a poisoned one is malformed. */
function decode(bytes: Uint8Array): number[] {
  if (bytes[0] === POISON) throw new TributaryError('UPDATE_MALFORMED', 'poisoned test payload');
  return [...bytes];
}

const ATTEMPT = '0123456789abcdef';

/** A collection of task 7, round 3 among `participants`, with each client's wire-byte counter in `wire`. */
function collection(overrides: Partial<CollectionOptions<number[]>> = {}, wire = new Map<string, number>()) {
  const c = new RoundCollection<number[]>({
    taskId: 7,
    round: 3,
    attempt: ATTEMPT,
    participants: ['a', 'b', 'c'],
    deadline: START + DEADLINE_MS,
    maxBytes: 64,
    maxChunkBytes: 16,
    decode,
    maxSamples: () => 100,
    wireBytes: (id) => wire.get(id) ?? 0,
    ...overrides,
  });
  let settled: CollectedRound<number[]> | undefined;
  void c.done.then((batch) => (settled = batch));
  return { c, wire, settled: () => settled };
}

const meta = (fields: Partial<ChunkMeta> = {}): ChunkMeta => ({ taskId: 7, round: 3, index: 0, count: 1, totalBytes: 3, samples: 10, attempt: ATTEMPT, ...fields });

/** One whole update in one chunk. */
function upload(c: RoundCollection<number[]>, clientId: string, payload: number[], samples = 10) {
  return c.acceptChunk(clientId, meta({ totalBytes: payload.length, samples }), Uint8Array.from(payload));
}

/** Lets the promise callbacks queued so far run (no timers advance). */
const flush = () => Promise.resolve().then(() => undefined);

describe('RoundCollection', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('accepts a complete upload with its decoded value, claimed samples, wire bytes since the round began and arrival time', async () => {
    const wire = new Map([['a', 1_000], ['b', 50], ['c', 0]]);
    const { c } = collection({}, wire);
    vi.setSystemTime(START + 1_234);
    wire.set('a', 1_300); // 300 bytes read from a's connection during the round
    expect(c.acceptChunk('a', meta({ count: 2, totalBytes: 5, samples: 42 }), Uint8Array.of(1, 2, 3))).toEqual({ next: 1, complete: false });
    expect(c.receivedCount).toBe(0);
    expect(c.acceptChunk('a', meta({ index: 1, count: 2, totalBytes: 5, samples: 42 }), Uint8Array.of(4, 5))).toEqual({ next: 2, complete: true });
    expect(c.receivedCount).toBe(1);
    upload(c, 'b', [9]);
    upload(c, 'c', [8]);
    const batch = await c.done;
    expect(batch.accepted[0]).toEqual({ clientId: 'a', value: [1, 2, 3, 4, 5], samples: 42, wireBytes: 300, receivedAt: START + 1_234 });
    expect(batch.accepted.map((u) => u.clientId)).toEqual(['a', 'b', 'c']);
    expect(batch).toMatchObject({ dropped: [], late: [], rejected: [] });
  });

  it('closes at its deadline and counts the missing participants late', async () => {
    const { c, settled } = collection();
    upload(c, 'b', [1, 2, 3]);
    await vi.advanceTimersByTimeAsync(DEADLINE_MS - 1);
    expect(settled()).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(settled()).toEqual({ accepted: [expect.objectContaining({ clientId: 'b' })], dropped: [], late: ['a', 'c'], rejected: [] });
  });

  it('closes at once when its deadline has already passed', async () => {
    vi.setSystemTime(START + DEADLINE_MS + 5);
    const { c, settled } = collection();
    await vi.advanceTimersByTimeAsync(0);
    expect(settled()?.late).toEqual(['a', 'b', 'c']);
    expectCode(() => upload(c, 'a', [1, 2, 3]), 'ROUND_NOT_ACTIVE');
  });

  it('closes as soon as `enough` updates are in, counting the over-selected rest late', async () => {
    const { c, settled } = collection({ participants: ['a', 'b', 'c', 'd'], enough: 2 });
    upload(c, 'd', [1, 2, 3]);
    await flush();
    expect(settled()).toBeUndefined();
    upload(c, 'b', [4, 5, 6]);
    await flush();
    expect(settled()).toEqual({
      accepted: [expect.objectContaining({ clientId: 'd' }), expect.objectContaining({ clientId: 'b' })],
      dropped: [],
      late: ['a', 'c'],
      rejected: [],
    });
    expect(vi.getTimerCount()).toBe(0); // the deadline timer was cleared
  });

  it('does not count rejected updates towards `enough`', async () => {
    const { c, settled } = collection({ enough: 1 });
    expectCode(() => upload(c, 'a', [POISON, 0, 0]), 'UPDATE_MALFORMED');
    await flush();
    expect(settled()).toBeUndefined();
    upload(c, 'b', [1, 2, 3]);
    await flush();
    expect(settled()).toMatchObject({ rejected: ['a'], late: ['c'] });
  });

  it('closes when the last pending participant drops, listing who dropped', async () => {
    const { c, settled } = collection();
    upload(c, 'a', [1, 2, 3]);
    c.drop('b');
    await flush();
    expect(settled()).toBeUndefined();
    c.drop('c');
    await flush();
    expect(settled()).toEqual({ accepted: [expect.objectContaining({ clientId: 'a' })], dropped: ['b', 'c'], late: [], rejected: [] });
  });

  it('discards a dropped participant’s half-finished upload and refuses its further chunks as duplicates', () => {
    const { c } = collection();
    c.acceptChunk('a', meta({ count: 2, totalBytes: 4 }), Uint8Array.of(1, 2));
    c.drop('a');
    expectCode(() => c.acceptChunk('a', meta({ index: 1, count: 2, totalBytes: 4 }), Uint8Array.of(3, 4)), 'UPLOAD_DUPLICATE');
  });

  it('ignores the drop of a client that already delivered or was never selected', async () => {
    const { c, settled } = collection({ participants: ['a', 'b'] });
    upload(c, 'a', [1, 2, 3]);
    c.drop('a');
    c.drop('zed');
    await flush();
    expect(settled()).toBeUndefined();
    upload(c, 'b', [1, 2, 3]);
    await flush();
    expect(settled()).toMatchObject({ dropped: [], late: [] });
    expect(settled()?.accepted).toHaveLength(2);
  });

  it('answers a second upload from a participant that already delivered with UPLOAD_DUPLICATE', () => {
    const { c } = collection();
    upload(c, 'a', [1, 2, 3]);
    expectCode(() => upload(c, 'a', [1, 2, 3, 4]), 'UPLOAD_DUPLICATE');
    expectCode(() => upload(c, 'a', [1, 2, 3], 11), 'UPLOAD_DUPLICATE');
    expect(c.receivedCount).toBe(1);
  });

  it('acknowledges again a delivered upload\'s last chunk (its ack was lost to a disconnect), before and after the close, counting it once', async () => {
    const { c, settled } = collection({ participants: ['a', 'b'] });
    c.acceptChunk('a', meta({ count: 2, totalBytes: 4 }), Uint8Array.of(1, 2));
    expect(c.acceptChunk('a', meta({ index: 1, count: 2, totalBytes: 4 }), Uint8Array.of(3, 4))).toEqual({ next: 2, complete: true });
    expect(c.acceptChunk('a', meta({ index: 1, count: 2, totalBytes: 4 }), Uint8Array.of(3, 4))).toEqual({ next: 2, complete: true });
    expectCode(() => c.acceptChunk('a', meta({ index: 0, count: 2, totalBytes: 4 }), Uint8Array.of(1, 2)), 'UPLOAD_DUPLICATE');
    upload(c, 'b', [5, 6, 7]);
    await flush();
    expect(settled()?.accepted.map((u) => [u.clientId, u.value])).toEqual([['a', [1, 2, 3, 4]], ['b', [5, 6, 7]]]);
    expect(c.acceptChunk('b', meta(), Uint8Array.of(5, 6, 7))).toEqual({ next: 1, complete: true });
    expectCode(() => c.acceptChunk('b', meta({ totalBytes: 4 }), Uint8Array.of(5, 6, 7, 8)), 'ROUND_NOT_ACTIVE');
    expect(c.receivedCount).toBe(2);
  });

  it('answers a client that was not selected with NOT_A_PARTICIPANT', () => {
    const { c } = collection();
    expect(c.isParticipant('zed')).toBe(false);
    expectCode(() => upload(c, 'zed', [1, 2, 3]), 'NOT_A_PARTICIPANT');
  });

  it.each([
    ['another task', { taskId: 8 }],
    ['another round', { round: 2 }],
  ])('answers a chunk for %s with ROUND_NOT_ACTIVE', (_label, fields) => {
    const { c } = collection();
    expectCode(() => c.acceptChunk('a', meta(fields), Uint8Array.of(1, 2, 3)), 'ROUND_NOT_ACTIVE');
  });

  it('refuses the chunks of an attempt given up (the round runs again) and keeps the client\'s place in this one', () => {
    const { c, settled } = collection({ participants: ['a'] });
    // A whole upload sealed for the attempt before: had it been taken, its bytes would not open and the client would be out.
    expectCode(() => c.acceptChunk('a', meta({ attempt: 'fedcba9876543210' }), Uint8Array.of(POISON, 2, 3)), 'ROUND_NOT_ACTIVE');
    expect(upload(c, 'a', [1, 2, 3])).toEqual({ next: 1, complete: true });
    return Promise.resolve().then(() => expect(settled()?.accepted.map((u) => u.clientId)).toEqual(['a']));
  });

  it('answers a chunk arriving after the round closed with ROUND_NOT_ACTIVE', async () => {
    const { c } = collection();
    await vi.advanceTimersByTimeAsync(DEADLINE_MS);
    expectCode(() => upload(c, 'a', [1, 2, 3]), 'ROUND_NOT_ACTIVE');
  });

  it('answers a claim of more samples than the participant holds with BAD_REQUEST, and takes a claim of exactly that many', () => {
    const { c } = collection({ maxSamples: (id) => (id === 'a' ? 50 : 100) });
    expectCode(() => upload(c, 'a', [1, 2, 3], 51), 'BAD_REQUEST');
    expect(upload(c, 'a', [1, 2, 3], 50)).toEqual({ next: 1, complete: true });
  });

  it('answers an upload that does not start at chunk 0 with UPLOAD_OUT_OF_ORDER', () => {
    const { c } = collection();
    expectCode(() => c.acceptChunk('a', meta({ index: 1, count: 2, totalBytes: 4 }), Uint8Array.of(1, 2)), 'UPLOAD_OUT_OF_ORDER');
    expect(c.acceptChunk('a', meta({ index: 0, count: 2, totalBytes: 4 }), Uint8Array.of(1, 2))).toEqual({ next: 1, complete: false });
  });

  it('takes a participant whose update does not decode out of the round as rejected, and the others carry on', async () => {
    const { c, settled } = collection();
    expectCode(() => upload(c, 'b', [POISON, 1, 2]), 'UPDATE_MALFORMED');
    expectCode(() => upload(c, 'b', [1, 2, 3]), 'UPLOAD_DUPLICATE'); // no second try
    upload(c, 'a', [1, 2, 3]);
    upload(c, 'c', [4, 5, 6]);
    await flush();
    expect(settled()).toEqual({
      accepted: [expect.objectContaining({ clientId: 'a', value: [1, 2, 3] }), expect.objectContaining({ clientId: 'c', value: [4, 5, 6] })],
      dropped: [],
      late: [],
      rejected: ['b'],
    });
  });

  it('closes when the last pending participant is rejected', async () => {
    const { c, settled } = collection({ participants: ['a', 'b'] });
    upload(c, 'a', [1, 2, 3]);
    expectCode(() => upload(c, 'b', [POISON, 1, 2]), 'UPDATE_MALFORMED');
    await flush();
    expect(settled()).toMatchObject({ rejected: ['b'], late: [] });
  });

  it('abort ends collection at once, counting everyone still pending late', async () => {
    const { c, settled } = collection();
    upload(c, 'c', [1, 2, 3]);
    c.abort();
    await flush();
    expect(settled()).toEqual({ accepted: [expect.objectContaining({ clientId: 'c' })], dropped: [], late: ['a', 'b'], rejected: [] });
    expect(vi.getTimerCount()).toBe(0);
    expectCode(() => upload(c, 'a', [1, 2, 3]), 'ROUND_NOT_ACTIVE');
  });

  it('resolves `done` once, with a batch that nothing happening afterwards changes', async () => {
    const { c } = collection();
    upload(c, 'a', [1, 2, 3]);
    c.drop('b');
    await vi.advanceTimersByTimeAsync(DEADLINE_MS);
    const batch = await c.done;
    const copy = structuredClone(batch);
    c.abort(); // a second finish
    c.drop('c'); // c is late now, not pending
    expectCode(() => upload(c, 'c', [1, 2, 3]), 'ROUND_NOT_ACTIVE');
    await vi.advanceTimersByTimeAsync(DEADLINE_MS * 2);
    expect(await c.done).toBe(batch);
    expect(batch).toEqual(copy);
    expect(batch).toEqual({ accepted: [expect.objectContaining({ clientId: 'a' })], dropped: ['b'], late: ['c'], rejected: [] });
  });

  it('closes at once when nobody was selected', async () => {
    const { settled } = collection({ participants: [] });
    await flush();
    expect(settled()).toEqual({ accepted: [], dropped: [], late: [], rejected: [] });
    expect(vi.getTimerCount()).toBe(0);
  });
});
