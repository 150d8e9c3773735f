import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DemoDoneLine, DemoRoundLine } from '../cli/demo.ts';
import { accuracyOf, runDemoJson } from './demo-run.ts';
import type { BenchOptions } from './options.ts';
import { table, writeLinePlot } from './report.ts';

const WIDTHS = [32, 8, 4] as const;

/** Float32 vs 8-bit vs 4-bit updates: same seed, same Dirichlet(0.5) partition. */
export async function run(options: BenchOptions): Promise<void> {
  const runs: Array<{ bits: number; rounds: DemoRoundLine[]; done: DemoDoneLine }> = [];
  for (const bits of WIDTHS) {
    process.stderr.write(`running ${bits === 32 ? 'float32' : `${bits}-bit`} (${options.clients} clients, ${options.rounds} rounds)…\n`);
    const args = ['--bits', String(bits), '--clients', String(options.clients), '--partition', 'dirichlet:0.5', '--seed', '1'];
    runs.push({ bits, ...(await runDemoJson(`${bits}-bit`, args, options.rounds)) });
  }
  const label = (bits: number) => (bits === 32 ? 'float32' : `${bits}-bit`);
  const x = runs[0]!.rounds.map((r) => r.round);
  const perRound = table(
    ['round', ...runs.map((r) => `${label(r.bits)} acc %`)],
    x.map((round, i) => [round, ...runs.map((r) => (accuracyOf(r.rounds[i]!) * 100).toFixed(2))]),
  );
  const float = accuracyOf(runs[0]!.done);
  const summary = table(
    ['updates', 'final acc %', 'Δ vs float32 (pp)', 'bytes/param', 'wall s'],
    runs.map((r) => {
      const bpp = r.rounds.reduce((s, l) => s + l.uploadBytesPerParam, 0) / r.rounds.length;
      return [label(r.bits), (accuracyOf(r.done) * 100).toFixed(2), ((accuracyOf(r.done) - float) * 100).toFixed(2), bpp.toFixed(3), (r.done.wallMs / 1000).toFixed(0)];
    }),
  );
  console.log(`\nAccuracy per round\n${perRound}\n\nSummary\n${summary}`);
  await mkdir(options.out, { recursive: true });
  const plot = join(options.out, 'quantization.html');
  await writeLinePlot(plot, 'Test accuracy per round: float32 vs 8-bit vs 4-bit updates (Fashion-MNIST, Dirichlet 0.5)',
    'round', 'test accuracy', x, runs.map((r) => ({ label: label(r.bits), values: r.rounds.map(accuracyOf) })));
  await writeFile(join(options.out, 'quantization.json'), JSON.stringify(runs, null, 2));
  console.log(`\nplot: ${plot}`);
}
