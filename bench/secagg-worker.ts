import { parentPort } from 'node:worker_threads';
import { cryptoReady, type KeyPair } from '../shared/crypto.ts';
import { expandSeed } from '../shared/mask-stream.ts';
import { addInto, newRingVector, type RingVector } from '../shared/ring.ts';
import { serveTasks } from '../server/ts-worker.ts';
import { clientLevels, maskClient } from './secagg-sim.ts';

/**
 * The second thread of bench/secagg.ts (this machine has two cores): masks a share of the
 * clients, so that setting up a 500-client round takes half the time. (The server's
 * unmasking runs on server/unmask-pool.ts, as in the live server.)
 */

export interface MaskTask {
  kind: 'mask';
  w: number;
  m: number;
  bits: number;
  seed: number;
  context: Uint8Array;
  publicKeys: Uint8Array[];
  groups: number;
  clients: Array<{ index: number; maskKeys: KeyPair; selfSeed: Uint8Array; partners: number[]; group: number }>;
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

serveTasks<MaskTask>(parentPort, async (task) => {
  await cryptoReady();
  return maskGroups(task);
});
