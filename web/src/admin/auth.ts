import QRCode from 'qrcode';
import { TributaryError } from '../../../shared/errors.ts';
import { api, h, setCsrfToken } from './api.ts';

export interface User {
  id: number;
  username: string;
  role: 'viewer' | 'operator' | 'admin';
}

interface NewAccount {
  user: User;
  totpSecret: string;
  totpUri: string;
  recoveryCodes: string[];
}

/** The signed-in user (and the session's CSRF token), or null. */
export async function currentUser(): Promise<User | null> {
  try {
    const me = await api<{ user: User; csrfToken: string | null }>('GET', '/api/auth/me');
    setCsrfToken(me.csrfToken);
    return me.user;
  } catch (error) {
    if (error instanceof TributaryError && error.status === 401) return null;
    throw error;
  }
}

function field(label: string, attrs: Record<string, string | boolean>): HTMLElement {
  const id = `f-${String(attrs.name)}`;
  return h('div', {}, h('label', { for: id }, label), h('input', { id, ...attrs }));
}

/** The account's TOTP secret as a QR code and text, and its recovery codes: shown once. */
export async function accountSecrets(account: NewAccount): Promise<HTMLElement> {
  const qr = await QRCode.toDataURL(account.totpUri, { margin: 1, width: 180 });
  return h('div', { class: 'panel', id: 'secrets' },
    h('p', {}, h('strong', {}, `Add ${account.user.username}'s authenticator now: `), 'scan the code, or type the secret. It is shown only once.'),
    h('img', { src: qr, alt: `TOTP QR code for ${account.user.username}`, width: '180', height: '180' }),
    h('p', {}, 'Secret: ', h('code', { id: 'totp-secret' }, account.totpSecret)),
    h('p', {}, 'Recovery codes (each works once, instead of a code from the app):'),
    h('pre', { id: 'recovery-codes' }, account.recoveryCodes.join('\n')));
}

/** First run: create the first admin with the setup token the server printed. */
export function setupView(token: string, done: () => void): HTMLElement {
  const error = h('p', { class: 'error', role: 'alert' });
  const result = h('div');
  const form = h('form', { class: 'panel', 'aria-label': 'Create the first admin' },
    h('h2', {}, 'Create the first admin'),
    h('p', { class: 'muted' }, 'This server has no admin yet. The setup link it printed lets you create one, once.'),
    field('Username', { name: 'username', autocomplete: 'username', required: true }),
    field('Password (12 characters or more)', { name: 'password', type: 'password', autocomplete: 'new-password', minlength: '12', required: true }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create admin')),
    error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    try {
      const account = await api<NewAccount>('POST', '/api/auth/setup', { token, username: data.get('username'), password: data.get('password') });
      form.replaceWith(result);
      result.append(await accountSecrets(account), h('div', { class: 'actions' }, h('button', { onclick: () => { history.replaceState(null, '', '/admin/'); done(); } }, 'I saved them — sign in')));
    } catch (e) {
      error.textContent = (e as Error).message;
    }
  });
  return h('main', { class: 'narrow' }, form, result);
}

export function loginView(done: (user: User) => void): HTMLElement {
  const error = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'panel', 'aria-label': 'Sign in' },
    h('h2', {}, 'Sign in'),
    field('Username', { name: 'username', autocomplete: 'username', required: true }),
    field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
    field('Code from your authenticator (or a recovery code)', { name: 'code', autocomplete: 'one-time-code', inputmode: 'numeric', required: true }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Sign in')),
    error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    try {
      const reply = await api<{ user: User; csrfToken: string }>('POST', '/api/auth/login', { username: data.get('username'), password: data.get('password'), code: String(data.get('code')).trim() });
      setCsrfToken(reply.csrfToken);
      done(reply.user);
    } catch (e) {
      error.textContent = e instanceof TributaryError && e.code === 'RATE_LIMITED' ? 'Too many attempts: wait a few minutes (failed sign-ins are limited per address and per account).' : (e as Error).message;
    }
  });
  return h('main', { class: 'narrow' }, form);
}
