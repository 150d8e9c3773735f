import type { Aggregation, RoundRecord, TaskSpec } from '../../../shared/protocol/task.ts';
import { eps, pct } from './format.ts';

/** A task and its rounds in words: the settings line under the title, the live region's round message. */

/** The rule with the settings it uses: "trimmed-mean β 0.1", "krum f 2", "median". */
function ruleOf(a: Aggregation): string {
  switch (a.rule) {
    case 'trimmed-mean': return `trimmed-mean β ${a.trim}`;
    case 'krum': case 'bulyan': return `${a.rule} f ${a.byzantine}`;
    case 'multi-krum': return `multi-krum f ${a.byzantine}, select ${a.select || 'n − f'}`;
    case 'centered-clipping': return `centered-clipping τ ${a.radius || 'auto'}, L ${a.iterations}`;
    default: return a.rule;
  }
}

/** The settings line: what the task trains, and how its rounds combine, protect and publish updates. */
export function settingsOf(spec: TaskSpec): string {
  const { aggregation: a, privacy: p } = spec;
  return [
    spec.model,
    spec.partition.kind === 'dirichlet' ? `Dirichlet ${spec.partition.alpha}` : 'IID',
    `${spec.bits}-bit`,
    spec.strategy,
    spec.mode,
    `rule ${ruleOf(a)}`,
    a.normBound > 0 ? `norm ≤ ${a.normBound}` : '',
    spec.secure ? 'secure aggregation' : '',
    p.mode === 'off' ? 'DP off' : `${p.mode} DP (ε ${p.epsilon}, δ ${p.delta.toExponential()})`,
    spec.openEnrollment ? 'open enrollment' : '',
  ].filter(Boolean).join(', ');
}

/** What the live region says when a round completes: the accuracy, and what the rule left out and privacy cost. */
export function roundSummary(record: RoundRecord, spec: TaskSpec): string {
  const parts = [`Round ${record.round} complete: accuracy ${pct(record.accuracy)}`];
  if (record.discarded.length > 0) parts.push(`${record.discarded.length} update(s) left out by ${record.rule}`);
  if (record.epsilon !== null) parts.push(`ε spent ${eps(record.epsilon)} of ${eps(spec.privacy.epsilon)}`);
  return parts.join(', ');
}
