import '../style.css';
import { api, h, setCsrfToken } from './api.ts';
import { currentUser, loginView, setupView, type User } from './auth.ts';
import { TasksView } from './dashboard.ts';
import { auditView, usersView } from './people.ts';

/**
 * The admin dashboard: first-run setup (from the link the server printed), sign-in with
 * a TOTP code, then tasks; admins also get users and the audit log.
 */
const app = document.getElementById('app')!;
const who = document.getElementById('who')!;
let tasks: TasksView | undefined;

async function showDashboard(user: User): Promise<void> {
  const key = await api<{ fingerprint: string }>('GET', '/api/server-key');
  const tabs: Array<[string, () => HTMLElement]> = [['Tasks', () => (tasks ??= new TasksView(user)).element]];
  if (user.role === 'admin') tabs.push(['Users', () => usersView(user)], ['Audit log', () => auditView()]);
  const body = h('div');
  const nav = h('nav', { class: 'actions', 'aria-label': 'Sections' }, ...tabs.map(([name, view]) => h('button', {
    class: 'secondary',
    'data-tab': name,
    onclick: (e) => {
      for (const b of nav.querySelectorAll('button')) b.classList.add('secondary');
      (e.currentTarget as HTMLElement).classList.remove('secondary');
      body.replaceChildren(view());
    },
  }, name)));
  who.replaceChildren(
    `${user.username} (${user.role}) · server key `, h('code', { title: 'Compare with what devices print' }, key.fingerprint), ' ',
    h('button', { class: 'secondary', onclick: async () => {
      await api('POST', '/api/auth/logout');
      setCsrfToken(null);
      tasks?.close();
      tasks = undefined;
      location.reload();
    } }, 'Sign out'));
  app.replaceChildren(h('main', {}, nav, body));
  (nav.firstElementChild as HTMLButtonElement).click();
}

async function boot(): Promise<void> {
  const setupToken = new URLSearchParams(location.hash.slice(1)).get('setup');
  const { setupNeeded } = await api<{ setupNeeded: boolean }>('GET', '/api/auth/status');
  if (setupNeeded) {
    app.replaceChildren(setupToken ? setupView(setupToken, () => void boot()) : h('main', { class: 'narrow' },
      h('p', {}, 'This server has no admin yet. Open the setup link it printed at start, or run ', h('code', {}, 'npx tributary admin create'), '.')));
    return;
  }
  const user = await currentUser();
  if (user) await showDashboard(user);
  else app.replaceChildren(loginView((u) => void showDashboard(u)));
}

void boot();
