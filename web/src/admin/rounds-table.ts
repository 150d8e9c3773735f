import type { RoundRecord } from '../../../shared/protocol/task.ts';
import { h } from './api.ts';
import { eps, keepSymbols, pct, shortId } from './format.ts';

/** One column of the round history: its heading and how a round fills its cell. */
interface Column {
  heading: string;
  cell: (r: RoundRecord) => Node | string;
  className?: string;
}

/** How many updates the rule left out, their clients in a tooltip (and, for screen readers, in the text). */
function discarded(r: RoundRecord): Node | string {
  if (r.discarded.length === 0) return '0';
  const ids = r.discarded.map(shortId).join(', ');
  return h('span', { class: 'discarded', title: ids }, String(r.discarded.length), h('span', { class: 'visually-hidden' }, ` (${ids})`));
}

/** The devices' scores of the version this round sent out, on their held-out data. */
function federated(r: RoundRecord): string {
  if (!r.federated) return '—';
  const { version, samples, metrics } = r.federated;
  const score = metrics.accuracy !== undefined ? pct(metrics.accuracy) : Object.entries(metrics).map(([k, v]) => `${k} ${v.toPrecision(3)}`).join(', ');
  return `${score} (v${version}, ${samples.toLocaleString()} samples)`;
}

const BEFORE_EPSILON: Column[] = [
  { heading: 'round', cell: (r) => String(r.round) },
  { heading: 'accuracy', cell: (r) => pct(r.accuracy) },
  { heading: 'loss', cell: (r) => (r.loss === null ? '—' : r.loss.toFixed(4)) },
  { heading: 'federated', cell: federated },
  { heading: 'participants', cell: (r) => String(r.participants) },
  { heading: 'dropped', cell: (r) => String(r.dropped) },
  { heading: 'late', cell: (r) => String(r.late) },
  { heading: 'discarded', cell: discarded },
  { heading: 'samples', cell: (r) => r.samples.toLocaleString() },
  { heading: 'bytes/param', cell: (r) => r.uploadBytesPerParam.toFixed(3) },
  { heading: 'duration', cell: (r) => `${(r.durationMs / 1000).toFixed(1)} s` },
];
const EPSILON: Column = { heading: 'ε spent', cell: (r) => (r.epsilon === null ? '—' : eps(r.epsilon)) };
/** Last: the longest text, and the same every round unless the task changed. */
const RULE: Column = { heading: 'rule', cell: (r) => r.rule || '—', className: 'rule' };

/** The round history, newest first; the ε column only for a task whose rounds spent privacy. */
export function roundsTable(rounds: readonly RoundRecord[]): HTMLTableElement {
  const columns = [...BEFORE_EPSILON, ...(rounds.some((r) => r.epsilon !== null) ? [EPSILON] : []), RULE];
  return h('table', { id: 'round-table' },
    h('thead', {}, h('tr', {}, ...columns.map((c) => h('th', { scope: 'col' }, keepSymbols(c.heading))))),
    h('tbody', {}, ...[...rounds].reverse().map((r) => h('tr', {},
      ...columns.map((c) => h('td', c.className ? { class: c.className } : {}, c.cell(r)))))));
}
