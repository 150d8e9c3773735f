import { parentPort } from 'node:worker_threads';
import { cryptoReady } from '../../shared/crypto/sodium.ts';
import { expandSeed } from '../../shared/secagg/mask-stream.ts';
import { runUnmaskJob, type UnmaskJob } from '../../shared/secagg/unmask.ts';
import { serveTasks } from '../ts-worker.ts';

/** One thread of the unmask pool: its share of a round's masks, as a correction vector. */
serveTasks<UnmaskJob>(parentPort, async (job) => {
  await cryptoReady();
  return runUnmaskJob(job, null, expandSeed);
});
