import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { accuracyOf, runDemoJson } from './demo-run.ts';
import type { BenchOptions } from './options.ts';
import { table, writeLinePlot } from './report.ts';

/** Training images: 3,000 per client at 10 clients, a fifth of each held out for federated evaluation. */
const TRAIN_LIMIT = 30_000;
const TARGET_PP = 1;

/**
 * Federated evaluation against the server's: a real demo (server and client processes) on
 * an IID split of the default built-in images, every client evaluating every round. Round
 * r's federated scores are of model version r − 1, which round r − 1's record scores on
 * the server's 10,000 test images: the two are compared version by version.
 */
export async function run(options: BenchOptions): Promise<void> {
  process.stderr.write(`federated evaluation: ${options.clients} clients, ${options.rounds} rounds, IID, ${TRAIN_LIMIT} training images…\n`);
  const args = ['--task', 'fashion-mnist', '--clients', String(options.clients), '--partition', 'iid', '--train-limit', String(TRAIN_LIMIT), '--seed', '1', '--eval-every', '1'];
  const { rounds, done } = await runDemoJson('federated evaluation', args, options.rounds);
  const server = new Map(rounds.map((r) => [r.round, accuracyOf(r)]));
  const pairs = rounds.flatMap((r) => {
    const f = r.federated;
    const s = f ? server.get(f.version) : undefined;
    return f && s !== undefined && f.metrics.accuracy !== undefined ? [{ version: f.version, federated: f.metrics.accuracy, server: s, samples: f.samples, clients: f.clients }] : [];
  });
  const worst = Math.max(...pairs.map((p) => Math.abs(p.federated - p.server) * 100));
  const rows = pairs.map((p) => [p.version, (p.federated * 100).toFixed(2), (p.server * 100).toFixed(2), ((p.federated - p.server) * 100).toFixed(2), p.samples, p.clients]);
  console.log(`\nFederated vs server-side evaluation, per model version (Fashion-MNIST IID, ${options.clients} clients; server: 10,000 test images)\n` +
    table(['version', 'federated acc %', 'server acc %', 'Δ pp', 'held-out samples', 'clients'], rows) +
    `\n\nLargest gap: ${worst.toFixed(2)} pp over ${pairs.length} versions (target: within ${TARGET_PP} pp every round: ${worst <= TARGET_PP ? 'met' : 'missed'}); wall ${(done.wallMs / 1000).toFixed(0)} s`);
  await mkdir(options.out, { recursive: true });
  const plot = join(options.out, 'federated-evaluation.html');
  await writeLinePlot(plot, 'Accuracy of each model version: federated (devices\' held-out data) vs the server\'s test set', 'model version', 'accuracy',
    pairs.map((p) => p.version), [{ label: 'federated', values: pairs.map((p) => p.federated) }, { label: 'server (10,000 test images)', values: pairs.map((p) => p.server) }]);
  await writeFile(join(options.out, 'federated-evaluation.json'), JSON.stringify({ pairs, worst, done }, null, 2));
  console.log(`plot: ${plot}`);
}
