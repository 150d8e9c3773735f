import { availableParallelism } from 'node:os';
import { addInto, type RingVector } from '../../shared/secagg/ring.ts';
import { splitJob, type Unmasked, type UnmaskJob } from '../../shared/secagg/unmask.ts';
import { startTsWorker, type TsWorker } from '../ts-worker.ts';

/**
 * Unmasking on worker threads. Rebuilding secrets and regenerating masks is seconds of
 * work at scale (a dropped client's masks with every surviving neighbour); on the main
 * thread it would stall every socket. The job is linear, so it is dealt across one worker
 * per core and the parts add up. Workers start with the first secure round and stay.
 */
export class UnmaskPool {
  private workers: Array<TsWorker<UnmaskJob, Unmasked>> = [];

  constructor(readonly threads = availableParallelism()) {}

  /** The plain sum: `maskedSum` with every mask of `job` removed; and who revealed forged shares. */
  async unmask(job: UnmaskJob, maskedSum: RingVector): Promise<Unmasked> {
    while (this.workers.length < this.threads) {
      this.workers.push(startTsWorker<UnmaskJob, Unmasked>(new URL('./unmask-worker.ts', import.meta.url)));
    }
    const parts = splitJob(job, this.threads);
    const corrections = await Promise.all(parts.map((part, i) => this.workers[i]!.call(part)));
    const vector = maskedSum.slice();
    for (const c of corrections) addInto(vector, c.vector, job.w);
    return { vector, forgers: [...new Set(corrections.flatMap((c) => c.forgers))].sort((a, b) => a - b) };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
    this.workers = [];
  }
}
