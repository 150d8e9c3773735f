import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** Plain-text tables and self-contained HTML line plots (uPlot, inlined) for benchmarks. */

export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padStart(widths[i]!)).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export interface Series {
  label: string;
  values: number[];
}

const require = createRequire(import.meta.url);

export async function writeLinePlot(file: string, title: string, xLabel: string, yLabel: string, x: number[], series: Series[]): Promise<void> {
  const uplotDir = dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
  const script = readFileSync(join(uplotDir, 'uPlot.iife.min.js'), 'utf8');
  const style = readFileSync(join(uplotDir, 'uPlot.min.css'), 'utf8');
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
  const data = [x, ...series.map((s) => s.values)];
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<style>${style} body{font:14px system-ui,sans-serif;margin:2rem}</style></head>
<body><h1 style="font-size:1.2rem">${title}</h1><div id="plot"></div>
<script>${script}</script>
<script>
const series = ${JSON.stringify(series.map((s, i) => ({ label: s.label, stroke: colors[i % colors.length], width: 2 })))};
new uPlot({ width: 800, height: 420, scales: { x: { time: false } },
  axes: [{ label: ${JSON.stringify(xLabel)} }, { label: ${JSON.stringify(yLabel)} }],
  series: [{ label: ${JSON.stringify(xLabel)} }, ...series] }, ${JSON.stringify(data)}, document.getElementById('plot'));
</script></body></html>`;
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, html);
}
