import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DemoDoneLine, DemoRoundLine } from '../cli/demo.ts';
import { accuracyOf, runDemoJson } from './demo-run.ts';
import type { BenchOptions } from './options.ts';
import { table, writeLinePlot } from './report.ts';
import { choicesOf, StrategyName } from '../shared/protocol/task.ts';

const STRATEGIES = choicesOf(StrategyName);

/**
 * FedAvg vs FedAvgM vs FedAdam vs FedYogi on strongly non-IID data (Dirichlet 0.1): the
 * same seed, partition and clients; only the server optimizer differs.
 */
export async function run(options: BenchOptions): Promise<void> {
  const runs: Array<{ strategy: string; rounds: DemoRoundLine[]; done: DemoDoneLine }> = [];
  for (const strategy of STRATEGIES) {
    process.stderr.write(`running ${strategy} (${options.clients} clients, ${options.rounds} rounds, Dirichlet 0.1)…\n`);
    const args = ['--strategy', strategy, '--clients', String(options.clients), '--partition', 'dirichlet:0.1', '--seed', '1'];
    runs.push({ strategy, ...(await runDemoJson(strategy, args, options.rounds)) });
  }
  const x = runs[0]!.rounds.map((r) => r.round);
  const perRound = table(
    ['round', ...runs.map((r) => `${r.strategy} acc %`)],
    x.map((round, i) => [round, ...runs.map((r) => (accuracyOf(r.rounds[i]!) * 100).toFixed(2))]),
  );
  const base = accuracyOf(runs[0]!.done);
  const best = (r: (typeof runs)[number]) => Math.max(...r.rounds.map(accuracyOf));
  const summary = table(
    ['strategy', 'final acc %', 'best acc %', 'Δ final vs fedavg (pp)', 'wall s'],
    runs.map((r) => [r.strategy, (accuracyOf(r.done) * 100).toFixed(2), (best(r) * 100).toFixed(2), ((accuracyOf(r.done) - base) * 100).toFixed(2), (r.done.wallMs / 1000).toFixed(0)]),
  );
  console.log(`\nAccuracy per round (Fashion-MNIST, Dirichlet 0.1)\n${perRound}\n\nSummary\n${summary}`);
  await mkdir(options.out, { recursive: true });
  const plot = join(options.out, 'optimizers.html');
  await writeLinePlot(plot, 'Test accuracy per round by server optimizer (Fashion-MNIST, Dirichlet 0.1)',
    'round', 'test accuracy', x, runs.map((r) => ({ label: r.strategy, values: r.rounds.map(accuracyOf) })));
  await writeFile(join(options.out, 'optimizers.json'), JSON.stringify(runs, null, 2));
  console.log(`\nplot: ${plot}`);
}
