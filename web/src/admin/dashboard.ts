import { io, type Socket } from 'socket.io-client';
import type { AdminClientToServerEvents, AdminServerToClientEvents, ClientView } from '../../../shared/protocol/events.ts';
import type { RoundRecord, TaskRecord } from '../../../shared/protocol/task.ts';
import { inviteLink } from '../invite.ts';
import { api, h } from './api.ts';
import type { User } from './auth.ts';
import { RoundChart } from './charts.ts';
import { eps, pct, stat } from './format.ts';
import { PrivacyPanel } from './privacy-panel.ts';
import { roundsTable } from './rounds-table.ts';
import { taskForm } from './task-form.ts';
import { roundSummary, settingsOf } from './task-summary.ts';

type AdminSocket = Socket<AdminServerToClientEvents, AdminClientToServerEvents>;
const can = (user: User, role: 'operator' | 'admin') => (role === 'admin' ? user.role === 'admin' : user.role !== 'viewer');
/** "4.2 s of 120 s", or how it ended otherwise. */
function lastRound(r: NonNullable<ClientView['lastRound']>): string {
  return r.elapsedMs === null ? `#${r.round} ${r.outcome}` : `#${r.round} ${(r.elapsedMs / 1000).toFixed(1)} s of ${(r.deadlineMs / 1000).toFixed(0)} s`;
}

const STATUS_BADGE: Record<string, string> = { running: 'good', paused: 'warn', stopped: 'bad', completed: 'good', created: '' };

/**
 * The tasks page: the list of tasks, and for the selected one its controls, live charts
 * (accuracy and loss, participants and drop-outs, bytes, duration), connected clients,
 * round history, downloads and enrollment. Live through the /admin socket.
 */
export class TasksView {
  readonly element = h('div', { class: 'tasks' });
  private tasks: TaskRecord[] = [];
  private selected: number | undefined;
  private rounds: RoundRecord[] = [];
  private clients: ClientView[] = [];
  private readonly list = h('nav', { 'aria-label': 'Tasks' });
  private readonly detail = h('section', { 'aria-live': 'polite' });
  private readonly charts = {
    accuracy: new RoundChart('Accuracy and loss', [
      { label: 'accuracy', color: '#2458d6', format: pct },
      { label: 'loss', color: '#b3261e', axis: 1, format: (v) => v.toFixed(3) },
      // The devices' scores of the same version, on their held-out data (federated evaluation).
      { label: 'federated accuracy', color: '#7aa2f7', format: pct },
      { label: 'federated loss', color: '#e08a84', axis: 1, format: (v) => v.toFixed(3) },
    ], ['accuracy', 'loss']),
    participants: new RoundChart('Participants and drop-outs', [{ label: 'participants', color: '#177245' }, { label: 'dropped', color: '#b3261e' }, { label: 'late', color: '#9a5b00' }], ['clients']),
    bytes: new RoundChart('Bytes uploaded per round', [{ label: 'KiB', color: '#6b3fa0', format: (v) => `${v.toFixed(1)} KiB` }], ['KiB']),
    duration: new RoundChart('Round duration', [{ label: 'seconds', color: '#0b7a8a', format: (v) => `${v.toFixed(1)} s` }], ['seconds']),
    // Shown only for tasks whose rounds spend privacy.
    privacy: new RoundChart('Privacy spent (ε) per round', [
      { label: 'ε spent', color: '#6b3fa0', format: eps },
      { label: 'target ε', color: '#5b6578', dash: [6, 4], format: eps },
      { label: 'clip norm C', color: '#0b7a8a', axis: 1, format: (v) => v.toFixed(3) },
    ], ['ε', 'clip norm C']),
  };
  private readonly privacy = new PrivacyPanel();
  private readonly live = h('p', { class: 'muted', id: 'live-round' });
  private readonly socket: AdminSocket;

  constructor(private readonly user: User) {
    this.element.append(h('div', { class: 'grid', style: 'grid-template-columns: minmax(14rem, 18rem) minmax(0, 1fr); align-items: start' }, this.list, this.detail));
    this.socket = io('/admin', { transports: ['websocket'], withCredentials: true });
    this.socket.on('round:complete', (record) => {
      if (record.taskId !== this.selected) return;
      this.rounds = [...this.rounds.filter((r) => r.round !== record.round), record].sort((a, b) => a.round - b.round);
      const task = this.task();
      if (!task) return;
      this.live.textContent = roundSummary(record, task.spec);
      this.renderRounds();
      void this.privacy.load(task);
    });
    this.socket.on('round:started', (e) => {
      if (e.taskId === this.selected) this.live.textContent = `Round ${e.round} running with ${e.participants.length} participant(s)…`;
    });
    this.socket.on('round:upload', (e) => {
      if (e.taskId === this.selected) this.live.textContent = `Round ${e.round}: ${e.received} of ${e.expected} updates in`;
    });
    this.socket.on('round:aborted', (e) => {
      if (e.taskId === this.selected) this.live.textContent = `Round ${e.round} aborted (${e.error.code}): model unchanged, retrying`;
    });
    this.socket.on('task:status', () => void this.refreshTasks());
    // The server ends the socket when this sign-in ends (logout elsewhere, expiry, a role change): start over.
    this.socket.on('disconnect', (reason) => {
      if (reason === 'io server disconnect') location.reload();
    });
    this.socket.on('clients:update', (e) => {
      if (e.taskId !== this.selected) return;
      this.clients = e.clients;
      this.renderClients();
    });
    void this.refreshTasks();
  }

  private async refreshTasks(): Promise<void> {
    this.tasks = await api<TaskRecord[]>('GET', '/api/tasks');
    this.selected ??= (this.tasks.find((t) => t.status === 'running') ?? this.tasks.at(-1))?.id;
    this.renderList();
    if (this.selected !== undefined) await this.select(this.selected, false);
    else this.showForm();
  }

  private renderList(): void {
    this.list.replaceChildren(
      h('h2', {}, 'Tasks'),
      ...this.tasks.map((t) => h('button', {
        class: t.id === this.selected ? '' : 'secondary',
        style: 'display:block;width:100%;text-align:left;margin:.25rem 0',
        'data-task': String(t.id),
        onclick: () => void this.select(t.id, true),
      }, `#${t.id} ${t.spec.name} `, h('span', { class: `badge ${STATUS_BADGE[t.status] ?? ''}` }, t.status))),
      can(this.user, 'operator') ? h('button', { class: 'secondary', style: 'display:block;width:100%;margin-top:.75rem', onclick: () => this.showForm() }, '+ New task') : '',
    );
  }

  private showForm(): void {
    this.selected = undefined;
    this.renderList();
    this.detail.replaceChildren(can(this.user, 'operator') ? taskForm((task) => {
      this.selected = task.id;
      void this.refreshTasks();
    }) : h('p', {}, 'No tasks yet.'));
  }

  private async select(id: number, refetchList: boolean): Promise<void> {
    this.selected = id;
    if (refetchList) this.renderList();
    const [rounds, clients] = await Promise.all([
      api<RoundRecord[]>('GET', `/api/tasks/${id}/rounds`),
      api<ClientView[]>('GET', `/api/tasks/${id}/clients`),
    ]);
    this.rounds = rounds;
    this.clients = clients;
    this.renderDetail();
    const task = this.task();
    if (task) await this.privacy.load(task);
  }

  private task(): TaskRecord | undefined {
    return this.tasks.find((t) => t.id === this.selected);
  }

  private control(action: 'start' | 'pause' | 'resume' | 'stop', label: string, style = ''): HTMLElement {
    return h('button', { class: style, 'data-action': action, onclick: async (event) => {
      const button = event.currentTarget as HTMLButtonElement;
      button.disabled = true;
      try {
        await api('POST', `/api/tasks/${this.selected}/${action}`);
        await this.refreshTasks();
      } catch (e) {
        this.live.textContent = (e as Error).message;
      } finally {
        button.disabled = false;
      }
    } }, label);
  }

  private renderDetail(): void {
    const task = this.task();
    if (!task) return;
    const { spec } = task;
    const controls = h('div', { class: 'actions' });
    if (can(this.user, 'operator')) {
      if (task.status === 'created') controls.append(this.control('start', 'Start'));
      if (task.status === 'running') controls.append(this.control('pause', 'Pause', 'secondary'));
      if (task.status === 'paused') controls.append(this.control('resume', 'Resume'));
      if (task.status === 'running' || task.status === 'paused') controls.append(this.control('stop', 'Stop', 'danger'));
    }
    controls.append(
      h('a', { class: 'button secondary', href: `/api/tasks/${task.id}/model/model.json`, download: `task-${task.id}-model.json` }, 'Model (TF.js)'),
      h('a', { class: 'button secondary', href: `/api/tasks/${task.id}/model/weights.bin`, download: 'weights.bin' }, 'Weights'),
      h('a', { class: 'button secondary', href: `/api/tasks/${task.id}/rounds.csv` }, 'Metrics (CSV)'),
    );
    this.detail.replaceChildren(
      h('h2', {}, `#${task.id} ${spec.name} `, h('span', { class: `badge ${STATUS_BADGE[task.status] ?? ''}`, id: 'task-status' }, task.status)),
      h('p', { class: 'muted', id: 'task-settings' }, settingsOf(spec), ` · contribute at `, h('a', { href: `/contribute/?task=${task.id}` }, `/contribute/?task=${task.id}`)),
      controls,
      this.live,
      h('div', { class: 'grid', id: 'stats' }),
      this.privacy.element,
      h('div', { class: 'charts' }, ...Object.values(this.charts).map((c) => c.element)),
      h('h2', {}, 'Connected clients'),
      h('div', { id: 'clients', style: 'overflow-x: auto' }),
      h('h2', { id: 'history-title' }, 'Round history'),
      // A region that scrolls both ways: focusable, so keyboards can scroll it too.
      h('div', { id: 'history', style: 'max-height: 22rem; overflow: auto', tabindex: '0', role: 'region', 'aria-labelledby': 'history-title' }),
      can(this.user, 'operator') ? this.enrollmentPanel(task) : '',
    );
    this.renderRounds();
    this.renderClients();
  }

  private renderRounds(): void {
    const task = this.task();
    if (!task) return;
    const r = this.rounds;
    const last = r.at(-1);
    document.getElementById('stats')?.replaceChildren(
      stat('Rounds', `${task.completedRounds} / ${task.spec.rounds}`),
      stat('Accuracy', last ? pct(last.accuracy) : '—'),
      stat('Participants', last ? String(last.participants) : '—'),
      stat('Last round', last ? `${(last.durationMs / 1000).toFixed(1)} s` : '—'),
    );
    const x = r.map((x) => x.round);
    // A round's federated scores are of the version it sent out: plotted at that version, next to the server's scores of it.
    const federated = new Map(r.flatMap((x) => (x.federated ? [[x.federated.version, x.federated.metrics] as const] : [])));
    this.charts.accuracy.update(x, [r.map((x) => x.accuracy), r.map((x) => x.loss), x.map((v) => federated.get(v)?.accuracy ?? null), x.map((v) => federated.get(v)?.loss ?? null)]);
    this.charts.participants.update(x, [r.map((x) => x.participants), r.map((x) => x.dropped), r.map((x) => x.late)]);
    this.charts.bytes.update(x, [r.map((x) => x.uploadBytes / 1024)]);
    this.charts.duration.update(x, [r.map((x) => x.durationMs / 1000)]);
    const privateRounds = r.some((x) => x.epsilon !== null);
    this.charts.privacy.element.hidden = !privateRounds;
    if (privateRounds) this.charts.privacy.update(x, [r.map((x) => x.epsilon), r.map(() => task.spec.privacy.epsilon), r.map((x) => x.clipNorm)]);
    document.getElementById('history')?.replaceChildren(roundsTable(r));
  }

  private renderClients(): void {
    const holder = document.getElementById('clients');
    if (!holder) return;
    if (this.clients.length === 0) {
      holder.replaceChildren(h('p', { class: 'muted' }, 'No client is connected to this task.'));
      return;
    }
    const badge = { idle: '', training: 'good', uploading: 'good', paused: 'warn', away: 'bad' } as const;
    holder.replaceChildren(h('table', { id: 'client-table' },
      h('thead', {}, h('tr', {}, ...['client', 'kind', 'backend', 'samples', 'samples/s', 'state', 'work', 'last round', 'rounds', 'battery'].map((c) => h('th', {}, c)))),
      h('tbody', {}, ...this.clients.map((c) => h('tr', {},
        h('td', {}, h('code', {}, c.id.slice(0, 8))),
        h('td', {}, c.kind),
        h('td', {}, `${c.backend || '—'}${c.adapter ? ` (${c.adapter})` : ''}`),
        h('td', {}, c.samples.toLocaleString()),
        h('td', {}, c.throughput ? Math.round(c.throughput).toLocaleString() : '—'),
        h('td', {}, h('span', { class: `badge ${badge[c.state]}` }, c.state)),
        h('td', {}, c.lastRound ? (c.lastRound.budget === null ? 'full epochs' : `${c.lastRound.budget.toLocaleString()} samples`) : '—'),
        h('td', {}, c.lastRound ? lastRound(c.lastRound) : '—'),
        h('td', {}, String(c.roundsDelivered)),
        h('td', {}, c.battery ? `${Math.round(c.battery.level * 100)} %${c.battery.charging ? ' ⚡' : ''}` : '—'))))));
  }

  private enrollmentPanel(task: TaskRecord): HTMLElement {
    const list = h('div');
    const minted = h('div');
    const refresh = async () => {
      const tokens = await api<Array<{ id: number; kind: string; label: string; uses: number; revokedAt: string | null; createdAt: string }>>('GET', `/api/tasks/${task.id}/enrollment-tokens`);
      list.replaceChildren(tokens.length === 0 ? h('p', { class: 'muted' }, 'No tokens yet.') : h('table', {},
        h('thead', {}, h('tr', {}, ...['label', 'kind', 'uses', 'created', ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, ...tokens.map((t) => h('tr', {},
          h('td', {}, t.label), h('td', {}, t.kind), h('td', {}, String(t.uses)), h('td', {}, new Date(t.createdAt).toLocaleString()),
          h('td', {}, t.revokedAt ? h('span', { class: 'badge bad' }, 'revoked') : h('button', { class: 'danger', onclick: async () => { await api('DELETE', `/api/enrollment-tokens/${t.id}`); await refresh(); } }, 'Revoke')))))));
    };
    const form = h('form', { class: 'row' },
      h('div', {}, h('label', { for: 'token-label' }, 'Label'), h('input', { id: 'token-label', name: 'label', value: 'devices', required: true })),
      h('div', {}, h('label', { for: 'token-kind' }, 'For'), (() => {
        const s = h('select', { id: 'token-kind', name: 'kind' });
        s.append(new Option('browsers and edge devices', 'client'), new Option('GPU nodes', 'gpu'));
        return s;
      })()),
      h('div', { class: 'actions', style: 'align-self:end' }, h('button', { type: 'submit' }, 'Mint token')));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const f = new FormData(form);
      const { token } = await api<{ token: string }>('POST', `/api/tasks/${task.id}/enrollment-tokens`, { label: String(f.get('label')), kind: String(f.get('kind')) });
      const invite = inviteLink(location.origin, task.id, token);
      // Through the environment, not --token: another user of the device could read the argument list.
      const command = f.get('kind') === 'gpu' ? 'gpu-node' : 'client';
      minted.replaceChildren(h('div', { class: 'panel' },
        h('p', {}, 'Shown once. One device, within 7 days. Edge devices: ', h('code', {}, `TRIBUTARY_TOKEN=${token} npx tributary ${command} --server ${location.origin} --task ${task.id}`)),
        f.get('kind') === 'client' ? h('p', {}, 'Browsers: ', h('a', { href: invite }, invite)) : ''));
      await refresh();
    });
    void refresh();
    return h('details', { class: 'panel' }, h('summary', {}, 'Enrollment tokens'), form, minted, list);
  }

  close(): void {
    this.socket.close();
  }
}
