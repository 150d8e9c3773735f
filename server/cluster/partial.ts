import { TributaryError } from '../../shared/errors.ts';
import { RunningSum } from '../../shared/ml/running-sum.ts';
import type { ParticipantRecord } from '../../shared/protocol/task.ts';
import { decodeRing, encodeRing, type RingVector } from '../../shared/secagg/ring.ts';

/** A secure group's unmasked sum: model levels then metric limbs in Z(2^ringBits); groups' sums add up in the ring. */
export interface RingSum {
  ringBits: number;
  words: RingVector;
  /** The inputs it sums. */
  survivors: number;
}

/**
 * What one process collected of a cluster round: the sum of its clients' updates (a
 * RunningSum of float64 sums and weights, or a secure group's ring sum) and the tallies
 * the round's record adds up. On the wire (a Redis value):
 *
 *   u32 header length (LE) · header (UTF-8 JSON) · RunningSum.toBytes() | encodeRing(words)
 *
 * JSON keeps float64 metric sums exact (it prints the shortest decimal that reads back to
 * the same double).
 */
export interface Partial {
  planId: string;
  processId: string;
  sum: RunningSum | RingSum;
  dropped: number;
  late: number;
  rejected: number;
  /** Plain: the samples of accepted updates; secure: the survivors' weights. */
  samples: number;
  uploadBytes: number;
  participants: ParticipantRecord[];
  /** Federated evaluation: how many of its participants evaluated, and (plain) their summed metric sums; a ring sum carries them as limbs. */
  evaluators: number;
  metricSums: number[];
}

type Header = Omit<Partial, 'sum'> & { ring: { ringBits: number; length: number; survivors: number } | null };

export function encodePartial(p: Partial): Uint8Array {
  const { sum, ...rest } = p;
  const ring = sum instanceof RunningSum ? null : sum;
  const header: Header = { ...rest, ring: ring && { ringBits: ring.ringBits, length: ring.words.length, survivors: ring.survivors } };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const body = ring ? encodeRing(ring.words, ring.ringBits) : (sum as RunningSum).toBytes();
  const out = new Uint8Array(4 + json.length + body.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 4);
  out.set(body, 4 + json.length);
  return out;
}

/** What a partial of this round must hold: a RunningSum over `lengths`, or `ring`'s words. */
export interface PartialShape {
  lengths: readonly number[];
  ring?: { ringBits: number; length: number };
}

/** A partial of the given shape; UPDATE_MALFORMED (or UPDATE_WRONG_LENGTH) if it is not one. */
export function decodePartial(bytes: Uint8Array, shape: PartialShape): Partial {
  if (bytes.length < 4) throw new TributaryError('UPDATE_MALFORMED', 'partial too short');
  const headerBytes = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  if (4 + headerBytes > bytes.length) throw new TributaryError('UPDATE_MALFORMED', 'partial header overruns it');
  let header: Header;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + headerBytes))) as Header;
  } catch {
    throw new TributaryError('UPDATE_MALFORMED', 'partial header is not JSON');
  }
  const { ring, ...rest } = header;
  const body = bytes.subarray(4 + headerBytes);
  if (!shape.ring !== !ring) throw new TributaryError('UPDATE_MALFORMED', shape.ring ? 'a secure round’s partial must be a ring sum' : 'a plain round’s partial must be a running sum');
  if (shape.ring && ring) {
    if (ring.ringBits !== shape.ring.ringBits || ring.length !== shape.ring.length) {
      throw new TributaryError('UPDATE_MALFORMED', `ring sum of ${ring.length} words at ${ring.ringBits} bits, expected ${shape.ring.length} at ${shape.ring.ringBits}`);
    }
    return { ...rest, sum: { ringBits: ring.ringBits, survivors: ring.survivors, words: decodeRing(body, ring.ringBits, ring.length) } };
  }
  // A copy: the sum's float64s need an aligned buffer of their own.
  return { ...rest, sum: RunningSum.fromBytes(body.slice(), shape.lengths) };
}
