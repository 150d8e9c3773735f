import { h } from './api.ts';

/** The task form's controls: a label for every one, ids `t-<name>`. */

/** The options of a select, in the schema's order. */
export function choices<T extends string | number>(values: T[], label: (value: T) => string): Array<[string, string]> {
  return values.map((v) => [String(v), label(v)]);
}

export function input(label: string, name: string, attrs: Record<string, string | boolean> = {}): HTMLElement {
  return h('div', {}, h('label', { for: `t-${name}` }, label), h('input', { id: `t-${name}`, name, ...attrs }));
}

export function select(label: string, name: string, options: Array<[string, string]>, value: string, attrs: Record<string, string> = {}): HTMLElement {
  const el = h('select', { id: `t-${name}`, name, ...attrs });
  for (const [v, text] of options) el.append(new Option(text, v, v === value, v === value));
  return h('div', {}, h('label', { for: `t-${name}` }, label), el);
}

export function checkbox(label: string, name: string, checked = false): HTMLElement {
  return h('div', {}, h('label', {}, h('input', { type: 'checkbox', name, id: `t-${name}`, ...(checked ? { checked: true } : {}) }), ` ${label}`));
}

/** Shows a field only while the current choice uses it; a hidden field is disabled too, so it is neither validated nor sent. */
export function showField(wrapper: HTMLElement, shown: boolean): void {
  wrapper.hidden = !shown;
  for (const control of wrapper.querySelectorAll<HTMLInputElement | HTMLSelectElement>('input, select')) control.disabled = !shown;
}

/** The numbers among `keys` that the form sends under `<prefix>-<key>` (disabled fields are not in FormData). */
export function numbersFrom<K extends string>(form: FormData, prefix: string, keys: readonly K[]): Partial<Record<K, number>> {
  const out: Partial<Record<K, number>> = {};
  for (const key of keys) {
    const value = form.get(`${prefix}-${key}`);
    if (value !== null) out[key] = Number(value);
  }
  return out;
}

/** A fieldset of the task form whose choices depend on the secure-aggregation checkbox. */
export interface SecureAwareFieldset<T> {
  readonly element: HTMLFieldSetElement;
  /** Secure aggregation was switched on or off: disable what cannot run that way, say why, and fall back. */
  secureChanged(secure: boolean): void;
  /** This fieldset's part of the request body: only the fields its current choice uses (the API fills in the rest). */
  read(form: FormData): Partial<T>;
}

/**
 * Shows only the fields the select's current choice uses (`usedBy[choice]` names them), now
 * and whenever the user changes it (clearing `note`). Returns the update, for changes made in code.
 */
export function fieldsFollow<K extends string>(select: HTMLSelectElement, fields: Record<K, HTMLElement>, usedBy: Record<string, readonly K[]>, note: HTMLElement): () => void {
  const follow = () => {
    const used = usedBy[select.value] ?? [];
    for (const [key, wrapper] of Object.entries(fields) as Array<[K, HTMLElement]>) showField(wrapper, used.includes(key));
  };
  select.addEventListener('change', () => {
    note.textContent = '';
    follow();
  });
  follow();
  return follow;
}
