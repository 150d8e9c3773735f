import { TributaryError } from '../../shared/errors.ts';
import type { ChunkAck, ChunkMeta } from '../../shared/protocol/events.ts';

/**
 * One client's update arriving in acknowledged chunks. Chunks must come in order; a
 * chunk sent again (after a lost ack) is acknowledged without being stored twice.
 */
export class ChunkedUpload {
  private readonly buffer: Uint8Array;
  private received = 0;
  private nextIndex = 0;

  constructor(
    readonly first: ChunkMeta,
    private readonly limits: { maxBytes: number; maxChunkBytes: number },
  ) {
    if (first.totalBytes > limits.maxBytes) {
      throw new TributaryError('UPLOAD_TOO_LARGE', `${first.totalBytes} > ${limits.maxBytes} bytes`);
    }
    if (first.count > first.totalBytes) throw new TributaryError('BAD_REQUEST', 'more chunks than bytes');
    this.buffer = new Uint8Array(first.totalBytes);
  }

  accept(meta: ChunkMeta, data: Uint8Array): ChunkAck {
    const f = this.first;
    if (meta.count !== f.count || meta.totalBytes !== f.totalBytes || meta.samples !== f.samples) {
      throw new TributaryError('BAD_REQUEST', 'chunk metadata changed mid-upload');
    }
    if (meta.index < this.nextIndex) return this.ack();
    if (meta.index > this.nextIndex) {
      throw new TributaryError('UPLOAD_OUT_OF_ORDER', `got ${meta.index}, expected ${this.nextIndex}`);
    }
    if (data.byteLength > this.limits.maxChunkBytes) {
      throw new TributaryError('UPLOAD_TOO_LARGE', `chunk of ${data.byteLength} bytes`);
    }
    const isLast = meta.index === meta.count - 1;
    const end = this.received + data.byteLength;
    if (end > f.totalBytes || (isLast && end !== f.totalBytes) || (!isLast && data.byteLength === 0)) {
      throw new TributaryError('UPDATE_MALFORMED', 'chunk sizes do not add up to the declared total');
    }
    this.buffer.set(data, this.received);
    this.received = end;
    this.nextIndex++;
    return this.ack();
  }

  get complete(): boolean {
    return this.nextIndex === this.first.count;
  }

  get bytes(): Uint8Array {
    return this.buffer;
  }

  private ack(): ChunkAck {
    return { next: this.nextIndex, complete: this.complete };
  }
}
