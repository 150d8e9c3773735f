import { startTsWorker } from '../server/ts-worker.ts';

/**
 * Jobs dealt to worker threads (one per lane, one job at a time each, as lanes free up),
 * results in the jobs' order. A failed job fails the whole run; the other lanes stop after
 * the job they are on. The worker module answers each job through `serveTasks`.
 */
export async function runInLanes<Job, Result>(
  worker: URL,
  jobs: readonly Job[],
  lanes: number,
  describe: { label: (job: Job) => string; outcome: (result: Result) => string },
): Promise<Result[]> {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const results: Result[] = new Array(jobs.length);
  const started = performance.now();
  let next = 0;
  let finished = 0;
  let failed = false;
  const lane = async () => {
    const thread = startTsWorker<Job, Result>(worker);
    try {
      while (!failed && next < jobs.length) {
        const i = next++;
        const label = describe.label(jobs[i]!);
        log(`[${i + 1}/${jobs.length}] ${label}…`);
        results[i] = await thread.call(jobs[i]!);
        const elapsed = ((performance.now() - started) / 1000).toFixed(0);
        log(`[${++finished}/${jobs.length} done] ${label}: ${describe.outcome(results[i]!)} (${elapsed} s so far)`);
      }
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      await thread.close();
    }
  };
  await Promise.all(Array.from({ length: Math.min(lanes, jobs.length) }, lane));
  return results;
}
