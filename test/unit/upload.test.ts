import { describe, expect, it } from 'vitest';
import type { ChunkMeta } from '../../shared/protocol/events.ts';
import { ChunkedUpload } from '../../server/rounds/upload.ts';
import { expectCode } from '../support/expect-code.ts';

const LIMITS = { maxBytes: 10, maxChunkBytes: 4 };
/** The payload of every test: 10 bytes in chunks of 4, 4 and 2. */
const PAYLOAD = Uint8Array.of(10, 11, 12, 13, 14, 15, 16, 17, 18, 19);
const CHUNKS = [PAYLOAD.subarray(0, 4), PAYLOAD.subarray(4, 8), PAYLOAD.subarray(8)];

const meta = (index: number, fields: Partial<ChunkMeta> = {}): ChunkMeta => ({ taskId: 1, round: 1, index, count: 3, totalBytes: 10, samples: 20, attempt: '0123456789abcdef', ...fields });

describe('ChunkedUpload', () => {
  it('takes chunks in order, acking the next index, and reassembles the bytes exactly', () => {
    const upload = new ChunkedUpload(meta(0), LIMITS);
    expect(upload.complete).toBe(false);
    expect(upload.accept(meta(0), CHUNKS[0]!)).toEqual({ next: 1, complete: false });
    expect(upload.accept(meta(1), CHUNKS[1]!)).toEqual({ next: 2, complete: false });
    expect(upload.complete).toBe(false);
    expect(upload.accept(meta(2), CHUNKS[2]!)).toEqual({ next: 3, complete: true });
    expect(upload.complete).toBe(true);
    expect([...upload.bytes]).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
  });

  it('acks a chunk sent again below the next index without storing it twice', () => {
    const upload = new ChunkedUpload(meta(0), LIMITS);
    upload.accept(meta(0), CHUNKS[0]!);
    upload.accept(meta(1), CHUNKS[1]!);
    // The ack of chunk 1 was lost; the client sends it again (here with other bytes, which must not land).
    expect(upload.accept(meta(1), Uint8Array.of(99, 99, 99, 99))).toEqual({ next: 2, complete: false });
    expect(upload.accept(meta(0), Uint8Array.of(98))).toEqual({ next: 2, complete: false });
    expect(upload.accept(meta(2), CHUNKS[2]!)).toEqual({ next: 3, complete: true });
    expect(upload.bytes).toEqual(PAYLOAD);
    // Resent after completion: still just an ack.
    expect(upload.accept(meta(2), CHUNKS[2]!)).toEqual({ next: 3, complete: true });
    expect(upload.bytes).toEqual(PAYLOAD);
  });

  it('answers a chunk beyond the next index with UPLOAD_OUT_OF_ORDER, then resumes at the expected one', () => {
    const upload = new ChunkedUpload(meta(0), LIMITS);
    upload.accept(meta(0), CHUNKS[0]!);
    expectCode(() => upload.accept(meta(2), CHUNKS[2]!), 'UPLOAD_OUT_OF_ORDER');
    upload.accept(meta(1), CHUNKS[1]!);
    upload.accept(meta(2), CHUNKS[2]!);
    expect(upload.bytes).toEqual(PAYLOAD);
  });

  it('refuses a declared total above maxBytes with UPLOAD_TOO_LARGE, and takes exactly maxBytes', () => {
    expectCode(() => new ChunkedUpload(meta(0, { totalBytes: 11 }), LIMITS), 'UPLOAD_TOO_LARGE');
    expect(() => new ChunkedUpload(meta(0, { totalBytes: 10 }), LIMITS)).not.toThrow();
  });

  it('refuses a chunk above maxChunkBytes with UPLOAD_TOO_LARGE, and takes one of exactly maxChunkBytes', () => {
    const upload = new ChunkedUpload(meta(0, { count: 2 }), LIMITS);
    expectCode(() => upload.accept(meta(0, { count: 2 }), PAYLOAD.subarray(0, 5)), 'UPLOAD_TOO_LARGE');
    expect(upload.accept(meta(0, { count: 2 }), PAYLOAD.subarray(0, 4))).toEqual({ next: 1, complete: false });
  });

  it('refuses more chunks than bytes with BAD_REQUEST', () => {
    expectCode(() => new ChunkedUpload(meta(0, { count: 11 }), LIMITS), 'BAD_REQUEST');
  });

  it('answers a last chunk that falls short of the declared total with UPDATE_MALFORMED', () => {
    const upload = new ChunkedUpload(meta(0), LIMITS);
    upload.accept(meta(0), CHUNKS[0]!);
    upload.accept(meta(1), CHUNKS[1]!);
    expectCode(() => upload.accept(meta(2), PAYLOAD.subarray(8, 9)), 'UPDATE_MALFORMED');
    expect(upload.complete).toBe(false);
  });

  it('answers a chunk that runs past the declared total with UPDATE_MALFORMED, storing none of it', () => {
    const upload = new ChunkedUpload(meta(0, { count: 3, totalBytes: 6 }), LIMITS);
    upload.accept(meta(0, { totalBytes: 6 }), Uint8Array.of(1, 2, 3, 4));
    expectCode(() => upload.accept(meta(1, { totalBytes: 6 }), Uint8Array.of(5, 6, 7)), 'UPDATE_MALFORMED');
    // The upload is where it was: the right chunks still complete it.
    upload.accept(meta(1, { totalBytes: 6 }), Uint8Array.of(5));
    expect(upload.accept(meta(2, { totalBytes: 6 }), Uint8Array.of(6))).toEqual({ next: 3, complete: true });
    expect([...upload.bytes]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('answers an empty chunk before the last with UPDATE_MALFORMED', () => {
    const upload = new ChunkedUpload(meta(0), LIMITS);
    expectCode(() => upload.accept(meta(0), new Uint8Array(0)), 'UPDATE_MALFORMED');
  });

  it.each([
    ['count', { count: 4 }],
    ['totalBytes', { totalBytes: 9 }],
    ['samples', { samples: 21 }],
  ])('answers a chunk whose %s differs from the first chunk’s with BAD_REQUEST', (_field, fields) => {
    const upload = new ChunkedUpload(meta(0), LIMITS);
    upload.accept(meta(0), CHUNKS[0]!);
    expectCode(() => upload.accept(meta(1, fields), CHUNKS[1]!), 'BAD_REQUEST');
    // Even a resend of a stored chunk is checked.
    expectCode(() => upload.accept(meta(0, fields), CHUNKS[0]!), 'BAD_REQUEST');
  });

  it('reassembles chunks that are views into larger buffers at odd offsets', () => {
    const backing = new Uint8Array(32).fill(0xee);
    backing.set(PAYLOAD.subarray(0, 4), 3);
    backing.set(PAYLOAD.subarray(4), 17);
    const upload = new ChunkedUpload(meta(0, { count: 2 }), { maxBytes: 10, maxChunkBytes: 6 });
    upload.accept(meta(0, { count: 2 }), backing.subarray(3, 7));
    upload.accept(meta(1, { count: 2 }), backing.subarray(17, 23));
    expect(upload.bytes).toEqual(PAYLOAD);
  });
});
