import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { DemoDoneLine, DemoRoundLine } from '../cli/demo.ts';

const bin = fileURLToPath(new URL('../bin/tributary.js', import.meta.url));

/**
 * The server's test accuracy in a demo line or round record. The benchmarks train
 * Fashion-MNIST, whose test set the server always has: a missing score is a broken run.
 */
export function accuracyOf(scored: { accuracy: number | null }): number {
  if (scored.accuracy === null) throw new Error('the server reported no test accuracy (no Fashion-MNIST test set?)');
  return scored.accuracy;
}

/** One real `tributary demo --json` run (server + client processes); progress goes to stderr. */
export async function runDemoJson(label: string, args: string[], rounds: number): Promise<{ rounds: DemoRoundLine[]; done: DemoDoneLine }> {
  // Federated evaluation would hold part of each client's shard out of training: off, so clients train on all of it.
  const child = spawn(process.execPath, [bin, 'demo', '--json', '--rounds', String(rounds), '--eval-every', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: DemoRoundLine[] = [];
  let done: DemoDoneLine | undefined;
  for await (const line of createInterface({ input: child.stdout })) {
    const parsed = JSON.parse(line) as DemoRoundLine | DemoDoneLine;
    if ('done' in parsed) done = parsed;
    else {
      lines.push(parsed);
      process.stderr.write(`  ${label} round ${parsed.round}: ${((parsed.accuracy ?? Number.NaN) * 100).toFixed(2)} %\n`);
    }
  }
  if (!done || lines.length !== rounds) throw new Error(`${label} demo did not complete`);
  return { rounds: lines, done };
}
