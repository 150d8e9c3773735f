import { readFileSync } from 'node:fs';
import type { DemoOptions } from '../cli/demo.ts';
import type { CheckpointStore } from '../server/rounds/checkpoint-store.ts';
import type { BenchOptions } from './options.ts';

/**
 * What the chaos benches (chaos: one server process, cluster-chaos: several) share: the
 * demo task they train, and the checks they make of its record once the run is over.
 */

/** The demo's Fashion-MNIST MLP task as both benches train it, seeded. */
export function chaosDemoOptions(options: BenchOptions, seed: number): DemoOptions {
  return {
    clients: options.clients, rounds: options.rounds, task: 'fashion-mnist', model: 'mlp', partition: 'dirichlet:0.5', bits: 8,
    localEpochs: 1, batchSize: 64, lr: 0.02, optimizer: 'momentum', proximalMu: 0, seed, trainLimit: 0, testLimit: 0,
    // As in runDemoJson's uninterrupted run: clients train on their whole shard, none of it held out.
    evalEvery: 0,
    datasetDir: [], port: 0, backend: 'auto', strategy: 'fedavg', mode: 'sync', bufferSize: 0, scheduling: 'uniform', secure: false, json: true,
  };
}

/** Whether the recorded rounds are exactly 1..`rounds`, each once, in that order. */
export function contiguous(recorded: ReadonlyArray<{ round: number }>, rounds: number): boolean {
  return recorded.length === rounds && recorded.every((r, i) => r.round === i + 1);
}

/** How many of the recorded rounds have their whole checkpoint (model, weights, server state) in the server's checkpoint store. */
export async function checkpointedRounds(store: CheckpointStore, taskId: number, recorded: ReadonlyArray<{ round: number }>): Promise<number> {
  const files = ['model.json', 'weights.bin', 'server-state.json', 'server-state.bin'];
  const whole = await Promise.all(recorded.map(async (r) => (await Promise.all(files.map((f) => store.get(taskId, r.round, f)))).every((bytes) => bytes !== undefined)));
  return whole.filter(Boolean).length;
}

/** How many times the clients whose `--json` logs these are reported each event. */
export function clientEventCounts(logFiles: readonly string[]): (event: string) => number {
  const events = logFiles.flatMap((file) => readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => {
    try {
      return (JSON.parse(line) as { event?: string }).event;
    } catch {
      return undefined; // a plain line: an error or warning
    }
  }));
  return (event) => events.filter((e) => e === event).length;
}

export const verdict = (ok: boolean): string => (ok ? 'met' : 'MISSED');

/** A summary row comparing a disturbed run's final accuracy with an undisturbed one's: within 1 pp. */
export function accuracyRow(label: string, disturbed: number, undisturbed: number): [string, string, string, string] {
  const delta = (disturbed - undisturbed) * 100;
  const measured = `${(disturbed * 100).toFixed(2)} % vs ${(undisturbed * 100).toFixed(2)} % (${delta >= 0 ? '+' : ''}${delta.toFixed(2)} pp)`;
  return [label, '|Δ| ≤ 1 pp', measured, verdict(Math.abs(delta) <= 1)];
}
