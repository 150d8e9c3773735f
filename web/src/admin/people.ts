import type { AuditEntry } from '../../../shared/protocol/events.ts';
import { api, h } from './api.ts';
import { accountSecrets, type User } from './auth.ts';

interface Listed extends User {
  disabled: boolean;
  createdAt: string;
}


/** Users and roles (admins): add a user, change a role, disable. */
export function usersView(me: User): HTMLElement {
  const table = h('div');
  const created = h('div');
  const error = h('p', { class: 'error', role: 'alert' });
  const refresh = async () => {
    const users = await api<Listed[]>('GET', '/api/users');
    table.replaceChildren(h('table', { id: 'user-table' },
      h('thead', {}, h('tr', {}, ...['user', 'role', 'state', 'since', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, ...users.map((u) => {
        const role = h('select', { 'aria-label': `role of ${u.username}` });
        for (const r of ['viewer', 'operator', 'admin']) role.append(new Option(r, r, r === u.role, r === u.role));
        role.addEventListener('change', () => void update(u.id, { role: role.value }));
        return h('tr', {},
          h('td', {}, u.username, u.id === me.id ? ' (you)' : ''),
          h('td', {}, role),
          h('td', {}, u.disabled ? h('span', { class: 'badge bad' }, 'disabled') : h('span', { class: 'badge good' }, 'active')),
          h('td', {}, new Date(u.createdAt).toLocaleDateString()),
          h('td', {}, h('button', { class: u.disabled ? 'secondary' : 'danger', onclick: () => void update(u.id, { disabled: !u.disabled }) }, u.disabled ? 'Enable' : 'Disable')));
      }))));
  };
  const update = async (id: number, patch: object) => {
    error.textContent = '';
    try {
      await api('PATCH', `/api/users/${id}`, patch);
    } catch (e) {
      error.textContent = (e as Error).message;
    }
    await refresh();
  };
  const form = h('form', { class: 'row', 'aria-label': 'Add a user' },
    h('div', {}, h('label', { for: 'u-name' }, 'Username'), h('input', { id: 'u-name', name: 'username', required: true })),
    h('div', {}, h('label', { for: 'u-pass' }, 'Password (12+)'), h('input', { id: 'u-pass', name: 'password', type: 'password', minlength: '12', required: true })),
    h('div', {}, h('label', { for: 'u-role' }, 'Role'), (() => {
      const s = h('select', { id: 'u-role', name: 'role' });
      for (const r of ['viewer', 'operator', 'admin']) s.append(new Option(r, r));
      return s;
    })()),
    h('div', { class: 'actions', style: 'align-self:end' }, h('button', { type: 'submit' }, 'Add user')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const f = new FormData(form);
    try {
      const account = await api<Parameters<typeof accountSecrets>[0]>('POST', '/api/users', { username: f.get('username'), password: f.get('password'), role: f.get('role') });
      created.replaceChildren(await accountSecrets(account));
      form.reset();
      await refresh();
    } catch (e) {
      error.textContent = (e as Error).message;
    }
  });
  void refresh();
  return h('section', {}, h('h2', {}, 'Users'), form, error, created, table);
}

/** The audit log, newest first, paged. */
export function auditView(): HTMLElement {
  const body = h('tbody');
  let oldest: number | undefined;
  const more = h('button', { class: 'secondary', onclick: () => void load() }, 'Older entries');
  const load = async () => {
    const entries = await api<AuditEntry[]>('GET', `/api/audit?limit=100${oldest ? `&before=${oldest}` : ''}`);
    oldest = entries.at(-1)?.id;
    more.classList.toggle('hidden', entries.length < 100);
    body.append(...entries.map((e) => h('tr', {},
      h('td', {}, new Date(e.at).toLocaleString()), h('td', {}, e.actor), h('td', {}, h('code', {}, e.action)), h('td', {}, e.target),
      h('td', { class: 'muted' }, Object.keys(e.detail).length ? JSON.stringify(e.detail) : ''), h('td', { class: 'muted' }, e.ip))));
  };
  void load();
  return h('section', {}, h('h2', {}, 'Audit log'),
    h('table', { id: 'audit-table' }, h('thead', {}, h('tr', {}, ...['when', 'who', 'what', 'on', 'detail', 'from'].map((c) => h('th', {}, c)))), body),
    h('div', { class: 'actions' }, more));
}
