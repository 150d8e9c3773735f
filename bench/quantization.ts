import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { DemoDoneLine, DemoRoundLine } from '../cli/demo.ts';
import type { BenchOptions } from './index.ts';
import { table, writeLinePlot } from './report.ts';

const bin = fileURLToPath(new URL('../bin/tributary.js', import.meta.url));
const WIDTHS = [32, 8, 4] as const;

/** One real demo run (server + client processes) with --json; returns its lines. */
async function demo(bits: number, options: BenchOptions): Promise<{ rounds: DemoRoundLine[]; done: DemoDoneLine }> {
  const args = [bin, 'demo', '--json', '--bits', String(bits), '--rounds', String(options.rounds),
    '--clients', String(options.clients), '--partition', 'dirichlet:0.5', '--seed', '1'];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const rounds: DemoRoundLine[] = [];
  let done: DemoDoneLine | undefined;
  for await (const line of createInterface({ input: child.stdout })) {
    const parsed = JSON.parse(line) as DemoRoundLine | DemoDoneLine;
    if ('done' in parsed) done = parsed;
    else {
      rounds.push(parsed);
      process.stderr.write(`  ${bits}-bit round ${parsed.round}: ${(parsed.accuracy * 100).toFixed(2)} %\n`);
    }
  }
  if (!done || rounds.length !== options.rounds) throw new Error(`${bits}-bit demo did not complete`);
  return { rounds, done };
}

/** Float32 vs 8-bit vs 4-bit updates: same seed, same Dirichlet(0.5) partition. */
export async function run(options: BenchOptions): Promise<void> {
  const runs: Array<{ bits: number; rounds: DemoRoundLine[]; done: DemoDoneLine }> = [];
  for (const bits of WIDTHS) {
    process.stderr.write(`running ${bits === 32 ? 'float32' : `${bits}-bit`} (${options.clients} clients, ${options.rounds} rounds)…\n`);
    runs.push({ bits, ...(await demo(bits, options)) });
  }
  const label = (bits: number) => (bits === 32 ? 'float32' : `${bits}-bit`);
  const x = runs[0]!.rounds.map((r) => r.round);
  const perRound = table(
    ['round', ...runs.map((r) => `${label(r.bits)} acc %`)],
    x.map((round, i) => [round, ...runs.map((r) => (r.rounds[i]!.accuracy * 100).toFixed(2))]),
  );
  const float = runs[0]!.done.accuracy;
  const summary = table(
    ['updates', 'final acc %', 'Δ vs float32 (pp)', 'bytes/param', 'wall s'],
    runs.map((r) => {
      const bpp = r.rounds.reduce((s, l) => s + l.uploadBytesPerParam, 0) / r.rounds.length;
      return [label(r.bits), (r.done.accuracy * 100).toFixed(2), ((r.done.accuracy - float) * 100).toFixed(2), bpp.toFixed(3), (r.done.wallMs / 1000).toFixed(0)];
    }),
  );
  console.log(`\nAccuracy per round\n${perRound}\n\nSummary\n${summary}`);
  await mkdir(options.out, { recursive: true });
  const plot = join(options.out, 'quantization.html');
  await writeLinePlot(plot, 'Test accuracy per round: float32 vs 8-bit vs 4-bit updates (Fashion-MNIST, Dirichlet 0.5)',
    'round', 'test accuracy', x, runs.map((r) => ({ label: label(r.bits), values: r.rounds.map((l) => l.accuracy) })));
  await writeFile(join(options.out, 'quantization.json'), JSON.stringify(runs, null, 2));
  console.log(`\nplot: ${plot}`);
}
