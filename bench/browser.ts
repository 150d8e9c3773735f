import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium, startWebServer, WEBGPU_FLAGS } from '../test/support/browser-harness.ts';
import type { BenchResults } from '../shared/protocol/device-bench.ts';
import type { BenchOptions } from './options.ts';
import { table } from './report.ts';

/**
 * Training step time per TF.js backend in headless Chromium (Debian's), for the dense and
 * the convolutional model (mlp, cnn): the /bench/ page of the built web app, served by an
 * in-process server on loopback (cross-origin isolated, as in production), with WebGPU
 * on SwiftShader where there is no GPU.
 */

const BUILT_PAGE = fileURLToPath(new URL('../dist/web/bench/index.html', import.meta.url));
/** CNN steps on SwiftShader take seconds each; the whole page has this long. */
const TIMEOUT_MS = 30 * 60_000;

const log = (line: string) => process.stderr.write(`${line}\n`);
const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

function report(r: BenchResults): string {
  const rows = r.measurements.map((m) => {
    const cpu = r.measurements.find((c) => c.preset === m.preset && c.backend === 'cpu' && c.status === 'ok');
    const backend = r.softwareRendered.includes(m.backend) ? `${m.backend} (${software(r, m.backend)})` : m.backend;
    if (m.status !== 'ok') return [m.preset, backend, m.status === 'n/a' ? `n/a (${m.reason})` : `${m.status}: ${m.reason}`, '', '', ''];
    const ratio = cpu ? `${(cpu.stepMs! / m.stepMs!).toFixed(2)}×` : '—';
    return [m.preset, backend, ms(m.stepMs!), ms(m.firstStepMs!), Math.round(m.samplesPerSecond!), ratio];
  });
  const lines = [
    `Training step time per backend, batch ${r.batchSize} (median over passes of ${r.stepsPerPass} steps, after a warm-up pass)`,
    '',
    table(['model', 'backend', 'step ms', 'first step ms', 'samples/s', 'vs CPU'], rows),
    '',
    'vs CPU: CPU step time / backend step time (CPU = 1.00×, higher = faster). First step: a fresh model, shader compilation included.',
    '',
    `browser:         ${r.userAgent}`,
    `cores:           ${r.hardwareConcurrency}`,
    `WebGPU adapter:  ${r.webgpuAdapter ?? 'none'}`,
    `WebGL renderer:  ${r.webglRenderer ?? 'none'}`,
    `cross-origin isolated: ${r.crossOriginIsolated ? 'yes' : 'no'}; WASM: ${r.wasm ? `SIMD ${r.wasm.simd ? 'yes' : 'no'}, multithread ${r.wasm.multithread ? 'yes' : 'no'}, ${r.wasm.threads} thread(s)` : 'did not start'}`,
  ];
  if (r.softwareRendered.length) {
    lines.push(
      '',
      `Note: on this machine ${r.softwareRendered.join(' and ')} run on a software renderer (SwiftShader: the GPU emulated on the CPU),`,
      'so their numbers say nothing about real GPUs; they only show that the GPU code paths train.',
    );
  }
  return lines.join('\n');
}

/** The software renderer's name as its adapter or renderer string gives it. */
function software(r: BenchResults, backend: string): string {
  const text = backend === 'webgpu' ? r.webgpuAdapter : r.webglRenderer;
  return /swiftshader/i.test(text ?? '') ? 'SwiftShader' : 'software';
}

export async function run(options: BenchOptions): Promise<void> {
  if (!existsSync(BUILT_PAGE)) {
    console.error('The web app is not built (dist/web/bench/ is missing): run `npm run build` first.');
    process.exit(1);
  }
  const started = Date.now();
  const server = await startWebServer();
  const browser = await launchChromium(WEBGPU_FLAGS);
  let results: BenchResults;
  try {
    const page = await browser.newPage();
    page.on('pageerror', (error) => log(`page error: ${error.message}`));
    await page.goto(`${server.url}/bench/`);
    await page.getByRole('button', { name: 'Run the benchmark' }).click();
    const output = page.locator('#results');
    let status = '';
    for (;;) {
      if (Date.now() - started > TIMEOUT_MS) throw new Error(`the benchmark page did not finish in ${TIMEOUT_MS / 60_000} minutes (last: ${status})`);
      const error = await output.getAttribute('data-error');
      if (error) throw new Error(`the benchmark page stopped: ${error}`);
      if ((await output.getAttribute('data-done')) === 'true') break;
      const now = (await page.locator('#status').textContent()) ?? '';
      if (now && now !== status) log(`${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s  ${(status = now)}`);
      await page.waitForTimeout(1_000);
    }
    results = JSON.parse((await output.textContent())!) as BenchResults;
  } finally {
    await browser.close();
    await server.close();
  }
  const text = `${report(results)}\n\nTotal: ${((Date.now() - started) / 1000).toFixed(0)} s (page ${(results.durationMs / 1000).toFixed(0)} s).`;
  console.log(`\n${text}`);
  await mkdir(options.out, { recursive: true });
  await writeFile(join(options.out, 'browser.txt'), `${text}\n`);
  await writeFile(join(options.out, 'browser.json'), JSON.stringify(results, null, 2));
  console.log(`\nwritten: ${join(options.out, 'browser.txt')}`);
}
