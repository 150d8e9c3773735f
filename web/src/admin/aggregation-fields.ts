import { h } from './api.ts';
import { choices, fieldsFollow, input, numbersFrom, select, type SecureAwareFieldset } from './fields.ts';
import { choicesOf, CombineRuleName, RULES_NEEDING_EVERY_UPDATE, TASK_DEFAULTS, type Aggregation } from '../../../shared/protocol/task.ts';

/** How the form names each rule: a new rule without a label fails the type check. */
export const RULE_LABELS: Record<CombineRuleName, string> = {
  mean: 'Mean (FedAvg)',
  median: 'Coordinate-wise median',
  'trimmed-mean': 'Trimmed mean',
  krum: 'Krum',
  'multi-krum': 'Multi-Krum',
  bulyan: 'Bulyan',
  'centered-clipping': 'Centered clipping',
};

type RuleField = 'trim' | 'byzantine' | 'select' | 'radius' | 'iterations';
const NUMBER_FIELDS = ['trim', 'byzantine', 'select', 'radius', 'iterations', 'normBound'] as const satisfies ReadonlyArray<keyof Aggregation>;

/** The settings each rule reads; the norm bound applies to every rule. */
const RULE_FIELDS: Record<CombineRuleName, readonly RuleField[]> = {
  mean: [],
  median: [],
  'trimmed-mean': ['trim'],
  krum: ['byzantine'],
  'multi-krum': ['byzantine', 'select'],
  bulyan: ['byzantine'],
  'centered-clipping': ['radius', 'iterations'],
};

const SECURE_REASON = 'The server sees only the sum in a secure round, so rules that read every update are off; norm bounding on the device still works.';

/** The form's "Aggregation" fieldset: the combine rule, the settings that rule uses, and the norm bound. */
export function aggregationFields(): SecureAwareFieldset<Aggregation> {
  const d = TASK_DEFAULTS.aggregation;
  const hint = h('p', { class: 'hint', id: 'aggregation-hint', hidden: true }, SECURE_REASON);
  const note = h('p', { class: 'hint', role: 'status' });
  const ruleField = select('Rule', 'aggregation-rule', choices(choicesOf(CombineRuleName), (r) => RULE_LABELS[r]), d.rule, { 'aria-describedby': 'aggregation-hint' });
  const rule = ruleField.querySelector('select')!;
  const fields: Record<RuleField, HTMLElement> = {
    trim: input('Trimmed fraction β, each end (0 to 0.49)', 'aggregation-trim', { type: 'number', min: '0', max: '0.49', step: 'any', value: String(d.trim) }),
    byzantine: input('Attackers tolerated per round (f)', 'aggregation-byzantine', { type: 'number', min: '0', step: '1', value: String(d.byzantine) }),
    select: input('Updates averaged (0 = n − f)', 'aggregation-select', { type: 'number', min: '0', step: '1', value: String(d.select) }),
    radius: input('Clipping radius τ (0 = median distance)', 'aggregation-radius', { type: 'number', min: '0', step: 'any', value: String(d.radius) }),
    iterations: input('Clipping iterations L', 'aggregation-iterations', { type: 'number', min: '1', max: '100', step: '1', value: String(d.iterations) }),
  };
  const ruleChanged = fieldsFollow(rule, fields, RULE_FIELDS, note);
  const element = h('fieldset', { id: 'aggregation' },
    h('legend', {}, 'Aggregation'),
    h('div', { class: 'row' },
      ruleField,
      ...Object.values(fields),
      input('Norm bound (L2, 0 = off)', 'aggregation-normBound', { type: 'number', min: '0', step: 'any', value: String(d.normBound) })),
    hint,
    note);
  return {
    element,
    secureChanged(secure) {
      note.textContent = '';
      hint.hidden = !secure;
      for (const option of rule.options) {
        const name = option.value as CombineRuleName;
        option.disabled = secure && RULES_NEEDING_EVERY_UPDATE.includes(name);
        option.text = option.disabled ? `${RULE_LABELS[name]} (not with secure aggregation)` : RULE_LABELS[name];
      }
      const chosen = rule.value as CombineRuleName;
      if (secure && RULES_NEEDING_EVERY_UPDATE.includes(chosen)) {
        rule.value = 'mean';
        note.textContent = `${RULE_LABELS[chosen]} needs every update, which a secure round never shows the server: the rule is back to ${RULE_LABELS.mean}.`;
        ruleChanged();
      }
    },
    read(form) {
      return { rule: String(form.get('aggregation-rule')) as CombineRuleName, ...numbersFrom(form, 'aggregation', NUMBER_FIELDS) };
    },
  };
}
