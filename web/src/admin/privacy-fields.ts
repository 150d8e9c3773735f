import { h } from './api.ts';
import { choices, fieldsFollow, input, numbersFrom, select, type SecureAwareFieldset } from './fields.ts';
import { choicesOf, PrivacyMode, TASK_DEFAULTS, type Privacy } from '../../../shared/protocol/task.ts';

const MODE_LABELS: Record<PrivacyMode, string> = {
  off: 'Off',
  central: 'Central — DP-FedAvg, plain rounds',
  distributed: 'Distributed — device noise under secure aggregation',
};

type PrivacyField = Exclude<keyof Privacy, 'mode'>;
const NUMBER_FIELDS = ['epsilon', 'delta', 'clipNorm', 'noiseMultiplier', 'targetQuantile', 'population'] as const satisfies readonly PrivacyField[];

/** The settings each mode reads: adaptive clipping runs on the server, so only central DP has it. */
const MODE_FIELDS: Record<PrivacyMode, readonly PrivacyField[]> = {
  off: [],
  central: NUMBER_FIELDS,
  distributed: ['epsilon', 'delta', 'clipNorm', 'noiseMultiplier', 'population'],
};

const MODE_NAMES: Record<PrivacyMode, string> = { off: 'No', central: 'Central', distributed: 'Distributed' };

/** The mode that cannot run with secure aggregation on, and with it off, and why. */
const BLOCKED = {
  secure: { mode: 'central', other: 'distributed', reason: 'Central DP needs plain rounds: in a secure round the server sees only the sum, never an update to clip.' },
  plain: { mode: 'distributed', other: 'central', reason: 'Distributed DP needs secure aggregation: each device adds its share of the noise before masking.' },
} as const satisfies Record<string, { mode: PrivacyMode; other: PrivacyMode; reason: string }>;

/** The form's "Differential privacy" fieldset: the mode, the (ε, δ) budget and how noise is calibrated. */
export function privacyFields(): SecureAwareFieldset<Privacy> {
  const d = TASK_DEFAULTS.privacy;
  const hint = h('p', { class: 'hint', id: 'privacy-hint' });
  const note = h('p', { class: 'hint', role: 'status' });
  const modeField = select('Privacy mode', 'privacy-mode', choices(choicesOf(PrivacyMode), (m) => MODE_LABELS[m]), d.mode, { 'aria-describedby': 'privacy-hint' });
  const mode = modeField.querySelector('select')!;
  modeField.classList.add('full-row');
  const fields: Record<PrivacyField, HTMLElement> = {
    epsilon: input('Target ε (whole task)', 'privacy-epsilon', { type: 'number', min: '0', step: 'any', value: String(d.epsilon) }),
    delta: input('δ', 'privacy-delta', { type: 'number', min: '0', max: '0.1', step: 'any', value: String(d.delta) }),
    clipNorm: input('Clip norm C (L2)', 'privacy-clipNorm', { type: 'number', min: '0', step: 'any', value: String(d.clipNorm) }),
    noiseMultiplier: input('Noise multiplier z (0 = calibrate to the budget)', 'privacy-noiseMultiplier', { type: 'number', min: '0', step: 'any', value: String(d.noiseMultiplier) }),
    targetQuantile: input('Adaptive clip: target quantile (0 = fixed C)', 'privacy-targetQuantile', { type: 'number', min: '0', max: '1', step: 'any', value: String(d.targetQuantile) }),
    population: input('Population sampled from (0 = the shards)', 'privacy-population', { type: 'number', min: '0', step: '1', value: String(d.population) }),
  };
  const modeChanged = fieldsFollow(mode, fields, MODE_FIELDS, note);
  const element = h('fieldset', { id: 'privacy-settings' },
    h('legend', {}, 'Differential privacy'),
    h('div', { class: 'row' }, modeField, ...Object.values(fields)),
    hint,
    note);
  return {
    element,
    secureChanged(secure) {
      note.textContent = '';
      const blocked = secure ? BLOCKED.secure : BLOCKED.plain;
      for (const option of mode.options) option.disabled = option.value === blocked.mode;
      hint.textContent = blocked.reason;
      // To the other DP mode, not off: switching secure aggregation never makes a task non-private unasked.
      if (mode.value === blocked.mode) {
        mode.value = blocked.other;
        note.textContent = `${MODE_NAMES[blocked.mode]} DP is not available ${secure ? 'in secure rounds' : 'without secure aggregation'}: switched to ${blocked.other} DP.`;
        modeChanged();
      }
    },
    read(form) {
      return { mode: String(form.get('privacy-mode')) as PrivacyMode, ...numbersFrom(form, 'privacy', NUMBER_FIELDS) };
    },
  };
}
