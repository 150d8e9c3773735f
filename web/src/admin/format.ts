import { h } from './api.ts';

/** Numbers as the dashboard shows them. */

/** A fraction as a percentage; — when it was not measured (no server-side test set, or a regression). */
export const pct = (v: number | null) => (v === null ? '—' : `${(v * 100).toFixed(2)} %`);

/** ε to three significant digits: 0.0123, 1.23, 12.3. */
export const eps = (v: number) => (v === 0 ? '0' : v.toPrecision(3));

/** A client id as the dashboard's tables show it: its first 8 characters. */
export const shortId = (id: string) => id.slice(0, 8);

/** A symbol kept as written inside the uppercased labels and headings (an uppercased δ reads Δ, ε reads E, z reads Z). */
export const symbol = (text: string) => h('span', { class: 'symbol' }, text);

const GREEK = /([\u0370-\u03ff]+)/u;

/** Text for an uppercased label, heading or legend, its Greek letters kept as written; other text is returned as it is. */
export function keepSymbols(text: string): HTMLElement | string {
  if (!GREEK.test(text)) return text;
  return h('span', {}, ...text.split(GREEK).map((part, i) => (i % 2 === 1 ? symbol(part) : part)));
}

/** A labelled figure, one tile of a `.grid`. */
export function stat(label: Node | string, value: string): HTMLElement {
  return h('div', { class: 'stat' }, h('div', { class: 'label' }, typeof label === 'string' ? keepSymbols(label) : label), h('div', { class: 'value' }, value));
}
