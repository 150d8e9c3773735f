import { parentPort } from 'node:worker_threads';
import { cryptoReady, type KeyPair } from '../shared/crypto/sodium.ts';
import { expandSeed } from '../shared/secagg/mask-stream.ts';
import { addInto, newRingVector, type RingVector } from '../shared/secagg/ring.ts';
import { serveTasks } from '../server/ts-worker.ts';
import { clientLevels, maskClient } from '../test/support/secagg-sim.ts';

/**
 * The second thread of bench/secagg.ts (this machine has two cores): masks a share of the
 * clients, so that setting up a 500-client round takes half the time (the server's
 * unmasking runs on server/unmask-pool.ts, as in the live server). A fresh one also times
 * client masking, holding only the timed clients' inputs as a device would: in the
 * simulation's own heap, which holds every client's state, each garbage collection the
 * keystream's buffers set off costs several times more.
 */

/** What masking needs of the round, and of each client. */
interface RoundInputs {
  w: number;
  m: number;
  bits: number;
  seed: number;
  context: Uint8Array;
  publicKeys: Uint8Array[];
}
type ClientInputs = { index: number; maskKeys: KeyPair; selfSeed: Uint8Array; partners: readonly number[] };

export interface MaskTask extends RoundInputs {
  kind: 'mask';
  groups: number;
  clients: Array<ClientInputs & { group: number }>;
}

export interface TimeTask extends RoundInputs {
  kind: 'time';
  /** Masked untimed first: JIT and allocator warm-up. */
  warmUp: number;
  clients: ClientInputs[];
}

/** Milliseconds each client (after the warm-up ones) takes to mask its upload, one at a time. */
function timeClients(task: TimeTask): number[] {
  return task.clients.flatMap((c, i) => {
    const levels = clientLevels(task.seed, c.index, task.m, task.bits);
    const started = performance.now();
    maskClient({ ...c, levels }, task.publicKeys, task.context, task.w, expandSeed);
    return i < task.warmUp ? [] : [performance.now() - started];
  });
}

/** Sums of masked uploads per group (groups let one pass serve nested drop-out sets). */
export function maskGroups(task: MaskTask): RingVector[] {
  const sums = Array.from({ length: task.groups }, () => newRingVector(task.w, task.m));
  for (const c of task.clients) {
    const levels = clientLevels(task.seed, c.index, task.m, task.bits);
    const y = maskClient({ index: c.index, levels, maskKeys: c.maskKeys, selfSeed: c.selfSeed, partners: c.partners }, task.publicKeys, task.context, task.w, expandSeed);
    addInto(sums[c.group]!, y, task.w);
  }
  return sums;
}

serveTasks<MaskTask | TimeTask>(parentPort, async (task) => {
  await cryptoReady();
  return task.kind === 'mask' ? maskGroups(task) : timeClients(task);
});
