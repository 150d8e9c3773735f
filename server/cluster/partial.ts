import { TributaryError } from '../../shared/errors.ts';
import { RunningSum } from '../../shared/ml/running-sum.ts';
import type { ParticipantRecord } from '../../shared/protocol/task.ts';

/**
 * What one process collected of a cluster round: the running sum of its clients' updates
 * and the tallies the round's record adds up. On the wire (a Redis value):
 *
 *   u32 header length (LE) · header (UTF-8 JSON) · RunningSum.toBytes()
 *
 * JSON keeps float64 metric sums exact (it prints the shortest decimal that reads back to
 * the same double).
 */
export interface Partial {
  planId: string;
  processId: string;
  sum: RunningSum;
  dropped: number;
  late: number;
  rejected: number;
  samples: number;
  uploadBytes: number;
  participants: ParticipantRecord[];
  /** Federated evaluation: how many of its participants evaluated, and their summed metric sums. */
  evaluators: number;
  metricSums: number[];
}

type Header = Omit<Partial, 'sum'>;

export function encodePartial(p: Partial): Uint8Array {
  const { sum, ...header } = p;
  const json = new TextEncoder().encode(JSON.stringify(header));
  const body = sum.toBytes();
  const out = new Uint8Array(4 + json.length + body.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 4);
  out.set(body, 4 + json.length);
  return out;
}

/** A partial for a model of these tensor lengths; UPDATE_MALFORMED if it is not one. */
export function decodePartial(bytes: Uint8Array, lengths: readonly number[]): Partial {
  if (bytes.length < 4) throw new TributaryError('UPDATE_MALFORMED', 'partial too short');
  const headerBytes = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  if (4 + headerBytes > bytes.length) throw new TributaryError('UPDATE_MALFORMED', 'partial header overruns it');
  let header: Header;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + headerBytes))) as Header;
  } catch {
    throw new TributaryError('UPDATE_MALFORMED', 'partial header is not JSON');
  }
  // A copy: the sum's float64s need an aligned buffer of their own.
  return { ...header, sum: RunningSum.fromBytes(bytes.slice(4 + headerBytes), lengths) };
}
