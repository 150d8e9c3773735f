import { availableParallelism } from 'node:os';
import { addInto, type RingVector } from '../../shared/secagg/ring.ts';
import { splitJob, type UnmaskJob } from '../../shared/secagg/unmask.ts';
import { startTsWorker, type TsWorker } from '../ts-worker.ts';

/**
 * Unmasking on worker threads. Rebuilding secrets and regenerating masks is seconds of
 * work at scale (a dropped client's masks with every surviving neighbour); on the main
 * thread it would stall every socket. The job is linear, so it is dealt across one worker
 * per core and the parts add up. Workers start with the first secure round and stay.
 */
export class UnmaskPool {
  private workers: Array<TsWorker<UnmaskJob, RingVector>> = [];

  constructor(readonly threads = availableParallelism()) {}

  /** The plain sum: `maskedSum` with every mask of `job` removed. */
  async unmask(job: UnmaskJob, maskedSum: RingVector): Promise<RingVector> {
    while (this.workers.length < this.threads) {
      this.workers.push(startTsWorker<UnmaskJob, RingVector>(new URL('./unmask-worker.ts', import.meta.url)));
    }
    const parts = splitJob(job, this.threads);
    const corrections = await Promise.all(parts.map((part, i) => this.workers[i]!.call(part)));
    const sum = maskedSum.slice();
    for (const c of corrections) addInto(sum, c, job.w);
    return sum;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
    this.workers = [];
  }
}
