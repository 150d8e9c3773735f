import { TributaryError } from '../../../shared/errors.ts';
import type { PrivacyMode, PrivacyStatus, TaskRecord } from '../../../shared/protocol/task.ts';
import { api, h } from './api.ts';
import { eps, stat, symbol } from './format.ts';

const MODE_LABELS: Record<PrivacyMode, string> = {
  off: 'off',
  central: 'central: the server clips and adds noise',
  distributed: 'distributed: devices add noise under secure aggregation',
};

/**
 * A private task's budget, from GET /api/tasks/:id/privacy: ε spent of the target as a bar,
 * δ, the noise multiplier z, the sample rate q, the rounds the rest affords, and the guarantee
 * in words. Hidden for a task without DP, and when the server answers 404 (no such endpoint,
 * or the task is not private).
 */
export class PrivacyPanel {
  readonly element = h('section', { class: 'panel privacy', id: 'privacy', 'aria-labelledby': 'privacy-title', hidden: true });
  /** Counts requests: an answer that a later request overtook (another task, a newer round) is dropped. */
  private requests = 0;
  /** The task whose budget is on show: another task's numbers are hidden while its own load, this task's stay until they are replaced. */
  private shown: number | undefined;

  async load(task: TaskRecord): Promise<void> {
    const request = ++this.requests;
    if (task.id !== this.shown) this.hide();
    if (task.spec.privacy.mode === 'off') {
      this.hide();
      return;
    }
    try {
      const status = await api<PrivacyStatus>('GET', `/api/tasks/${task.id}/privacy`);
      if (request === this.requests) this.show(task.id, ...this.budget(status));
    } catch (e) {
      if (request !== this.requests) return;
      if (e instanceof TributaryError && e.status === 404) this.hide();
      else this.show(task.id, h('h2', { id: 'privacy-title' }, 'Differential privacy'), h('p', { class: 'error' }, `The privacy budget could not be loaded: ${(e as Error).message}`));
    }
  }

  private budget(s: PrivacyStatus): Node[] {
    const exhausted = s.roundsLeft === 0 || s.spent >= s.epsilon;
    this.element.dataset.spent = String(s.spent);
    this.element.dataset.epsilon = String(s.epsilon);
    return [
      h('h2', { id: 'privacy-title' }, 'Differential privacy ', h('span', { class: 'badge' }, MODE_LABELS[s.mode]), exhausted ? ' ' : '', exhausted ? h('span', { class: 'badge bad' }, 'budget spent') : ''),
      h('label', { for: 'privacy-budget' }, `ε spent: ${eps(s.spent)} of ${eps(s.epsilon)}`),
      h('progress', { id: 'privacy-budget', max: String(s.epsilon), value: String(Math.min(s.spent, s.epsilon)) }, `${eps(s.spent)} of ${eps(s.epsilon)}`),
      h('div', { class: 'grid' },
        stat('δ', s.delta.toExponential()),
        stat(h('span', {}, 'Noise multiplier ', symbol('z')), s.noiseMultiplier.toFixed(3)),
        stat(h('span', {}, 'Sample rate ', symbol('q')), s.sampleRate.toPrecision(3)),
        stat('Rounds left', String(s.roundsLeft))),
      h('p', { class: 'muted guarantee' }, s.guarantee),
    ];
  }

  private show(taskId: number, ...children: Node[]): void {
    this.element.replaceChildren(...children);
    this.element.hidden = false;
    this.shown = taskId;
  }

  private hide(): void {
    this.element.hidden = true;
    this.shown = undefined;
  }
}
