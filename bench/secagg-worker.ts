import { parentPort } from 'node:worker_threads';
import { cryptoReady, type KeyPair } from '../shared/crypto.ts';
import { expandSeed } from '../shared/mask-stream.ts';
import { addInto, newRingVector, type RingVector } from '../shared/ring.ts';
import { runUnmaskJob, type UnmaskJob } from '../shared/secagg-unmask.ts';
import { clientLevels, maskClient } from './secagg-sim.ts';

/**
 * The second thread of bench/secagg.ts (this machine has two cores): masks a share of the
 * clients, or runs a share of the server's unmasking. Started through a tsx bootstrap, since
 * workers do not inherit the main thread's TypeScript loader.
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

export interface UnmaskTask {
  kind: 'unmask';
  job: UnmaskJob;
}

export type WorkerTask = { kind: 'ping' } | MaskTask | UnmaskTask;

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

async function handle(task: WorkerTask): Promise<unknown> {
  await cryptoReady();
  if (task.kind === 'ping') return 'pong';
  if (task.kind === 'mask') return maskGroups(task);
  return runUnmaskJob(task.job, null, expandSeed);
}

parentPort?.on('message', (message: { id: number; task: WorkerTask }) => {
  handle(message.task).then(
    (result) => parentPort!.postMessage({ id: message.id, ok: true, result }),
    (error: unknown) => parentPort!.postMessage({ id: message.id, ok: false, error: String(error) }),
  );
});
