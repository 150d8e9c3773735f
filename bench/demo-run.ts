import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { DemoDoneLine, DemoRoundLine } from '../cli/demo.ts';

const bin = fileURLToPath(new URL('../bin/tributary.js', import.meta.url));

/** One real `tributary demo --json` run (server + client processes); progress goes to stderr. */
export async function runDemoJson(label: string, args: string[], rounds: number): Promise<{ rounds: DemoRoundLine[]; done: DemoDoneLine }> {
  const child = spawn(process.execPath, [bin, 'demo', '--json', '--rounds', String(rounds), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: DemoRoundLine[] = [];
  let done: DemoDoneLine | undefined;
  for await (const line of createInterface({ input: child.stdout })) {
    const parsed = JSON.parse(line) as DemoRoundLine | DemoDoneLine;
    if ('done' in parsed) done = parsed;
    else {
      lines.push(parsed);
      process.stderr.write(`  ${label} round ${parsed.round}: ${(parsed.accuracy * 100).toFixed(2)} %\n`);
    }
  }
  if (!done || lines.length !== rounds) throw new Error(`${label} demo did not complete`);
  return { rounds: lines, done };
}
