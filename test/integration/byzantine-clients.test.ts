import { describe, expect, it } from 'vitest';
import { runDemoJson } from '../../bench/demo-run.ts';

/**
 * Real processes: a server and 7 edge clients per run, 2 of which send sign-flipped updates
 * (`client --attack sign-flip`). The runs are seeded and sync rounds combine in a fixed
 * order, so they replay exactly; the margins are those measured (FedAvg 0.363 → 0.272,
 * median 0.292 → 0.421 over 4 rounds), halved.
 */
describe('two of seven clients attacking', () => {
  const args = (rule: string) => ['--clients', '7', '--train-limit', '3500', '--test-limit', '1000', '--rule', rule, '--byzantine', '0.29:sign-flip', '--seed', '1'];

  it('the median keeps accuracy rising while FedAvg falls', async () => {
    const [fedavg, median] = await Promise.all([runDemoJson('fedavg', args('mean'), 4), runDemoJson('median', args('median'), 4)]);
    const accuracy = (run: typeof fedavg) => run.rounds.map((r) => r.accuracy);
    const [a, m] = [accuracy(fedavg), accuracy(median)];
    expect(a.at(-1)!).toBeLessThan(a[0]! - 0.04);
    expect(m.at(-1)!).toBeGreaterThan(m[0]! + 0.06);
    expect(m.at(-1)!).toBeGreaterThan(a.at(-1)! + 0.07);
    expect(median.rounds.every((r) => r.rule === 'median → fedavg')).toBe(true);
    expect(fedavg.rounds.every((r) => r.rule === 'mean → fedavg' && r.participants === 7)).toBe(true);
  }, 240_000);
});
