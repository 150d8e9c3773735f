import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { h } from './api.ts';
import { keepSymbols } from './format.ts';

export interface SeriesSpec {
  label: string;
  color: string;
  /** Which y axis: left (0) or right (1). */
  axis?: 0 | 1;
  format?: (v: number) => string;
  /** Dash pattern in CSS pixels, e.g. [6, 4] for a reference line; solid when absent. */
  dash?: number[];
}

/**
 * A live line chart over rounds (uPlot): `update` redraws with the latest rounds; it
 * follows its container's width.
 */
export class RoundChart {
  readonly element: HTMLElement;
  private plot: uPlot | undefined;
  private readonly holder: HTMLElement;

  constructor(
    readonly title: string,
    private readonly series: SeriesSpec[],
    private readonly axisLabels: [string, string?],
  ) {
    this.holder = h('div', { class: 'chart', role: 'img', 'aria-label': title });
    this.element = h('figure', { class: 'stat', 'data-chart': title }, h('figcaption', { class: 'label' }, keepSymbols(title)), this.holder);
    new ResizeObserver(() => this.plot?.setSize({ width: this.width(), height: 220 })).observe(this.holder);
  }

  private width(): number {
    return Math.max(200, this.holder.clientWidth);
  }

  /** `values`: one array per series, aligned with `rounds`; null where a round has no value (a gap). */
  update(rounds: number[], values: Array<Array<number | null>>): void {
    // The plotted numbers as text too: for screen readers' "describe" tools and for tests.
    this.element.dataset.rounds = JSON.stringify(rounds);
    this.element.dataset.series = JSON.stringify(values);
    const data = [rounds, ...values] as uPlot.AlignedData;
    if (this.plot) {
      this.plot.setData(data);
      return;
    }
    const scales = this.series.some((s) => s.axis === 1) ? ['y', 'y2'] : ['y'];
    this.plot = new uPlot({
      width: this.width(),
      height: 220,
      scales: { x: { time: false } },
      axes: [
        { label: 'round' },
        { scale: 'y', label: this.axisLabels[0] },
        ...(scales.length > 1 ? [{ scale: 'y2', side: 1 as const, label: this.axisLabels[1] ?? '', grid: { show: false } }] : []),
      ],
      series: [
        { label: 'round' },
        ...this.series.map((s) => ({ label: keepSymbols(s.label), stroke: s.color, width: 2, scale: s.axis === 1 ? 'y2' : 'y', points: { show: rounds.length < 40 }, ...(s.dash ? { dash: s.dash } : {}), ...(s.format ? { value: (_u: uPlot, v: number | null) => (v === null ? '—' : s.format!(v)) } : {}) })),
      ],
    }, data, this.holder);
  }
}
