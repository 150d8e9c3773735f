import { availableParallelism } from 'node:os';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkAggregation } from '../server/strategies/combine/index.ts';
import { runInLanes } from './lanes.ts';
import { FASHION_MNIST_DIR } from '../shared/data/fashion-mnist.ts';
import { ATTACK_DESCRIPTIONS, ATTACKS, attackerCount, type AttackName } from '../shared/ml/attacks.ts';
import { withTaskDefaults, type Aggregation, type CombineRuleName } from '../shared/protocol/task.ts';
import type { BenchOptions } from './options.ts';
import { table, writeLinePlot } from './report.ts';
import type { CellResult, CellTask, Population, RoundPoint } from './robustness-worker.ts';

/**
 * Byzantine robustness: every attack in shared/ml/attacks.ts against every robust combine
 * rule, in-process (no sockets: the server's strategy and the clients' real TF.js training,
 * called directly). Fashion-MNIST, mlp, Dirichlet(0.5) shards, every client in every
 * round, 20 % of them attacking (each reports its shard's true sample count as its weight).
 * "FedAvg" is the mean rule with the fedavg server step. Each cell (attack × rule) is its
 * own seeded run, so a rerun gives the same table; cells are dealt to one worker thread per
 * core. Nothing is shared between cells but round 1's training (see robustness-worker.ts),
 * which is the same computation in all of them.
 */

export type Attack = AttackName | 'none';

export interface RobustnessSettings {
  attacks: readonly Attack[];
  /** Each rule once, with its settings. */
  rules: ReadonlyArray<Partial<Aggregation> & { rule: CombineRuleName }>;
  /** Fraction of clients that attack (rounded to whole clients; 0.2 of 20 is 4). */
  fraction: number;
  alpha: number;
  seed: number;
  /**
   * The first N of the 60,000 training images are partitioned. Local training is nearly the
   * whole cost: measured 0.34 ms of CPU per image per epoch with WASM, plus ~20 ms per
   * training call, so the 36-cell grid would take ~2 h on two cores with all 60,000 images.
   * With 8,000 (≈ 400 a client) it took 2,714 s of CPU: ~23 min on two free cores.
   */
  trainLimit: number;
  /** Per-round curves on the first N test images; the table's final accuracy is on all 10,000. */
  curveTestLimit: number;
  /** Worker threads, one cell at a time each (one per core). */
  workers: number;
  /** The best rule under each attack should end within this many points of FedAvg without attack. */
  targetGapPp: number;
  dataDir: string;
}

/** The grid's rules: f for the Krum family is the number of attackers. */
function rulesFor(f: number): RobustnessSettings['rules'] {
  return [
    { rule: 'mean' },
    { rule: 'median' },
    { rule: 'trimmed-mean', trim: 0.2 },
    { rule: 'multi-krum', byzantine: f },
    { rule: 'bulyan', byzantine: f },
    { rule: 'centered-clipping' },
  ];
}

export function defaultSettings(options: BenchOptions): RobustnessSettings {
  const fraction = 0.2;
  return {
    attacks: ['none', ...ATTACKS],
    rules: rulesFor(attackerCount(fraction, options.clients)),
    fraction,
    alpha: 0.5,
    seed: 1,
    trainLimit: 8_000,
    curveTestLimit: 2_000,
    workers: availableParallelism(),
    targetGapPp: 3,
    dataDir: FASHION_MNIST_DIR,
  };
}

export async function run(options: BenchOptions): Promise<void> {
  await runRobustness(options, defaultSettings(options));
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const pct = (x: number) => (x * 100).toFixed(2);

interface Cell {
  task: CellTask;
  label: string;
}

/** Cells the rule can run with n clients; the others are reported, not run. */
function planCells(options: BenchOptions, settings: RobustnessSettings, population: Population): { cells: Cell[]; skipped: string[] } {
  const cells: Cell[] = [];
  const skipped: string[] = [];
  for (const aggregation of settings.rules) {
    try {
      checkAggregation(withTaskDefaults({ aggregation }).aggregation, options.clients);
    } catch (error) {
      skipped.push(`${aggregation.rule}: ${(error as Error).message} (the grid is meant for --clients 20)`);
      continue;
    }
    for (const attack of settings.attacks) cells.push({ label: `${attack} × ${aggregation.rule}`, task: { population, attack, aggregation } });
  }
  return { cells, skipped };
}

/** Deals the cells to the workers, one at a time each, as they free up; results in the cells' order. */
async function runCells(cells: Cell[], workers: number): Promise<CellResult[]> {
  const labels = new Map(cells.map((c) => [c.task, c.label]));
  return runInLanes<CellTask, CellResult>(new URL('./robustness-worker.ts', import.meta.url), cells.map((c) => c.task), workers, {
    label: (task) => labels.get(task)!,
    outcome: (result) => `${pct(result.finalAccuracy)} % in ${(result.wallMs / 1000).toFixed(0)} s`,
  });
}

export async function runRobustness(options: BenchOptions, settings: RobustnessSettings): Promise<void> {
  const started = performance.now();
  const population: Population = {
    clients: options.clients,
    attackers: attackerCount(settings.fraction, options.clients),
    rounds: options.rounds,
    alpha: settings.alpha,
    seed: settings.seed,
    trainLimit: settings.trainLimit,
    curveTestLimit: settings.curveTestLimit,
    dataDir: settings.dataDir,
  };
  const { cells, skipped } = planCells(options, settings, population);
  for (const s of skipped) log(`skipping ${s}`);
  log(
    `robustness: ${cells.length} runs of ${population.clients} clients (${population.attackers} attacking) × ${population.rounds} rounds, ` +
      `${population.trainLimit} training images, ${settings.workers} workers…`,
  );
  const results = await runCells(cells, settings.workers);
  const wallMs = performance.now() - started;
  await reportRobustness(options, settings, population, results, skipped, wallMs);
}

function find(results: readonly CellResult[], attack: Attack, rule: CombineRuleName): CellResult | undefined {
  return results.find((r) => r.attack === attack && r.rule === rule);
}

/**
 * Per attack: the best rule of all, and the best robust one (mean left out), against FedAvg
 * without attack; and how much FedAvg itself lost to the attack.
 */
function verdicts(settings: RobustnessSettings, rules: readonly CombineRuleName[], results: readonly CellResult[]): string {
  const baseline = find(results, 'none', 'mean')?.finalAccuracy;
  const target = settings.targetGapPp;
  const gap = (r: CellResult | undefined) => (r && baseline !== undefined ? (r.finalAccuracy - baseline) * 100 : undefined);
  const show = (x: number | undefined) => (x === undefined ? 'n/a' : x.toFixed(2));
  const within = (x: number | undefined) => (x === undefined ? 'n/a' : x >= -target ? 'yes' : 'NO');
  const bestOf = (row: readonly CellResult[]) => row.reduce<CellResult | undefined>((b, r) => (!b || r.finalAccuracy > b.finalAccuracy ? r : b), undefined);
  const rows = settings.attacks.map((attack) => {
    const row = rules.flatMap((rule) => find(results, attack, rule) ?? []);
    const [best, robust, fedAvg] = [bestOf(row), bestOf(row.filter((r) => r.rule !== 'mean')), find(results, attack, 'mean')];
    const [bestGap, robustGap, fedAvgGap] = [gap(best), gap(robust), gap(fedAvg)];
    return [
      attack,
      best?.rule ?? 'n/a',
      show(bestGap),
      within(bestGap),
      robust?.rule ?? 'n/a',
      show(robustGap),
      within(robustGap),
      show(fedAvgGap),
      fedAvgGap === undefined ? 'n/a' : fedAvgGap < -target ? 'yes' : 'no',
    ];
  });
  const headers = ['attack', 'best rule', 'Δ (pp)', `≤ ${target} pp`, 'best robust rule', 'Δ (pp)', `≤ ${target} pp`, 'FedAvg Δ (pp)', `FedAvg > ${target} pp worse`];
  const clean = baseline === undefined ? 'n/a' : `${pct(baseline)} %`;
  return `Best rule per attack, Δ against FedAvg without attack (${clean}); target: the best within ${target} pp\n${table(headers, rows)}`;
}

/** Which updates the selecting rules (Krum's family) left out: the attackers should be, honest clients not. */
function discards(settings: RobustnessSettings, rules: readonly CombineRuleName[], results: readonly CellResult[]): string | undefined {
  const selecting = rules.filter((rule) => results.some((r) => r.rule === rule && r.curve.some((p) => p.attackersDiscarded + p.honestDiscarded > 0)));
  if (selecting.length === 0) return undefined;
  const perRound = (r: CellResult | undefined) => {
    if (!r) return 'n/a';
    const mean = (of: (p: RoundPoint) => number) => (r.curve.reduce((a, p) => a + of(p), 0) / r.curve.length).toFixed(1);
    return `${mean((p) => p.attackersDiscarded)} / ${mean((p) => p.honestDiscarded)}`;
  };
  const rows = settings.attacks.filter((a) => a !== 'none').map((a) => [a, ...selecting.map((rule) => perRound(find(results, a, rule)))]);
  return `Updates left out per round (mean over rounds), attackers / honest clients\n${table(['attack', ...selecting], rows)}`;
}

async function writePlots(out: string, settings: RobustnessSettings, population: Population, rules: readonly CombineRuleName[], results: readonly CellResult[]): Promise<void> {
  const x = Array.from({ length: population.rounds }, (_, i) => i + 1);
  for (const attack of settings.attacks) {
    const series = rules.flatMap((rule) => {
      const r = find(results, attack, rule);
      return r ? [{ label: rule, values: r.curve.map((p) => p.accuracy) }] : [];
    });
    if (series.length === 0) continue;
    const under = attack === 'none' ? 'no attack' : `${attack} (${population.attackers} of ${population.clients} clients)`;
    await writeLinePlot(join(out, `robustness-${attack}.html`), `Test accuracy per round under ${under}, by combine rule (first ${population.curveTestLimit} test images)`, 'round', 'test accuracy', x, series);
  }
}

/** The tables on stdout, the plots and the raw results in `options.out`; exported to re-render a saved robustness.json. */
export async function reportRobustness(options: BenchOptions, settings: RobustnessSettings, population: Population, results: CellResult[], skipped: string[], wallMs: number) {
  const rules = settings.rules.map((r) => r.rule).filter((rule) => results.some((r) => r.rule === rule));
  const accuracy = table(
    ['attack', ...rules],
    settings.attacks.map((attack) => [attack, ...rules.map((rule) => {
      const r = find(results, attack, rule);
      return r ? pct(r.finalAccuracy) : 'n/a';
    })]),
  );
  const rejected = results.filter((r) => r.curve.some((p) => p.rejected > 0)).map((r) => `${r.attack} × ${r.rule}`);
  const lines = [
    `Byzantine robustness: Fashion-MNIST, mlp, ${population.clients} clients (Dirichlet ${population.alpha} over the first ${population.trainLimit} training images), ` +
      `all clients every round, ${population.rounds} rounds, 1 local epoch (task-default hyper-parameters), seed ${population.seed}.`,
    `${population.attackers} of ${population.clients} clients attack (${settings.fraction * 100} %); multi-krum and bulyan are told f = ${population.attackers}. Attacks:`,
    ...ATTACKS.map((a) => `  ${a}: ${ATTACK_DESCRIPTIONS[a]}`),
    '',
    'Final test accuracy % (all 10,000 Fashion-MNIST test images), attack × rule',
    accuracy,
    '',
    verdicts(settings, rules, results),
  ];
  const left = discards(settings, rules, results);
  if (left) lines.push('', left);
  if (rejected.length > 0) lines.push('', `Updates with NaN or ±∞ were refused (as the upload check refuses them) in: ${rejected.join(', ')}`);
  if (skipped.length > 0) lines.push('', 'Not run:', ...skipped.map((s) => `  ${s}`));
  lines.push('', `Wall time: ${(wallMs / 60_000).toFixed(1)} min on ${settings.workers} worker thread(s).`);
  console.log(`\n${lines.join('\n')}`);

  await mkdir(options.out, { recursive: true });
  await writePlots(options.out, settings, population, rules, results);
  const json = join(options.out, 'robustness.json');
  await writeFile(json, JSON.stringify({ population, settings, wallMs, skipped, results }, null, 2));
  console.log(`\nplots: ${join(options.out, 'robustness-<attack>.html')}, one per attack; raw results: ${json}`);
}
