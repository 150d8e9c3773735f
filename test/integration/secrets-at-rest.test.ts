import Database from 'better-sqlite3';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createUser } from '../../cli/admin.ts';
import { buildApp, type App, type AppOptions } from '../../server/app.ts';
import { hashPassword } from '../../server/auth/passwords.ts';
import { currentTotp, newTotp } from '../../server/auth/totp.ts';
import { openDatabase } from '../../server/store/database.ts';
import { SqliteAccounts } from '../../server/store/sqlite-accounts.ts';
import { TributaryError } from '../../shared/errors.ts';

const PASSWORD = 'a long enough password';
const modeOf = (file: string) => statSync(file).mode & 0o777;

/** Review finding 9: the state folder is the owner's alone, and TOTP seeds are sealed with a key kept outside the database. */
describe('secrets at rest', () => {
  let root: string;
  let dataDir: string;
  const apps: App[] = [];
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'tributary-rest-'));
    dataDir = join(root, 'state'); // not there yet: the server makes it
  });
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
    rmSync(root, { recursive: true, force: true });
  });

  async function start(options: Partial<AppOptions> = {}): Promise<App> {
    const app = await buildApp({ dataDir, logger: pino({ level: 'silent' }), ...options });
    apps.push(app);
    return app;
  }

  const login = (app: App, username: string, code: string) =>
    app.http.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password: PASSWORD, code }, remoteAddress: '10.9.0.1' });

  const storedSeed = (username: string) => {
    const db = new Database(join(dataDir, 'tributary.db'), { readonly: true });
    try {
      return (db.prepare('SELECT totp_secret FROM users WHERE username = ?').get(username) as { totp_secret: string }).totp_secret;
    } finally {
      db.close();
    }
  };

  it('creates the state folder 0700, and the database, its WAL files and the keys 0600', async () => {
    const app = await start();
    await app.accounts.createUser('ada', PASSWORD, 'admin', { actor: 'test', ip: '' }); // a write: the WAL is in use
    expect(modeOf(dataDir)).toBe(0o700);
    for (const file of ['tributary.db', 'tributary.db-wal', 'tributary.db-shm', 'totp.key', 'server-key.json']) {
      expect([file, modeOf(join(dataDir, file))]).toEqual([file, 0o600]);
    }
  });

  it('tightens a database file created world-readable by an older version', async () => {
    openDatabase(join(root, 'old.db')).close();
    chmodSync(join(root, 'old.db'), 0o644);
    openDatabase(join(root, 'old.db')).close();
    expect(modeOf(join(root, 'old.db'))).toBe(0o600);
  });

  it('keeps TOTP seeds sealed in the database, and still takes their codes', async () => {
    const app = await start();
    const account = await app.accounts.createUser('ada', PASSWORD, 'admin', { actor: 'test', ip: '' });
    const stored = storedSeed('ada');
    expect(stored).not.toContain(account.totpSecret);
    expect(stored).not.toBe(account.totpSecret);
    expect((await login(app, 'ada', currentTotp(account.totpSecret))).statusCode).toBe(200);
  });

  it('keeps the key where --secrets-key-file says, not in the state folder', async () => {
    const keyFile = join(root, 'keys', 'tributary-secrets.key');
    const app = await start({ secretsKeyFile: keyFile });
    const account = await app.accounts.createUser('ada', PASSWORD, 'admin', { actor: 'test', ip: '' });
    expect(modeOf(keyFile)).toBe(0o600);
    expect(() => statSync(join(dataDir, 'totp.key'))).toThrow();
    expect((await login(app, 'ada', currentTotp(account.totpSecret))).statusCode).toBe(200);
  });

  it('seals the plaintext seeds of a database written the old way, in place, when it opens it', async () => {
    mkdirSync(dataDir);
    const old = openDatabase(join(dataDir, 'tributary.db'));
    const seed = newTotp('old').secret;
    await new SqliteAccounts(old).createUser({ username: 'old', role: 'admin', passwordHash: await hashPassword(PASSWORD), totpSecret: seed, totpLastStep: 0, recoveryHashes: [], disabled: false });
    old.close();
    expect(storedSeed('old')).toBe(seed);
    const app = await start();
    expect(storedSeed('old')).not.toContain(seed);
    expect((await login(app, 'old', currentTotp(seed))).statusCode).toBe(200);
  });

  it('refuses to start with a key that does not open the stored seeds, or with none, making no second key', async () => {
    const first = await start();
    await first.accounts.createUser('ada', PASSWORD, 'admin', { actor: 'test', ip: '' });
    await first.close();
    apps.splice(0);
    const refusal = (options: Partial<AppOptions>) => start(options).then(() => 'started', (error: unknown) => (error instanceof TributaryError ? error.code : String(error)));
    const missing = join(root, 'missing.key');
    expect(await refusal({ secretsKeyFile: missing })).toBe('SECRETS_KEY_INVALID');
    expect(existsSync(missing)).toBe(false);
    const other = join(root, 'other.key');
    writeFileSync(other, `${Buffer.alloc(32, 7).toString('base64')}\n`, { mode: 0o600 });
    expect(await refusal({ secretsKeyFile: other })).toBe('SECRETS_KEY_INVALID');
    writeFileSync(other, 'not a key\n');
    expect(await refusal({ secretsKeyFile: other })).toBe('SECRETS_KEY_INVALID');
    expect(await refusal({})).toBe('started'); // the right key still opens them
  });

  it('seals the seed of a user made by `tributary admin create` with the server’s key, while the server runs', async () => {
    const app = await start();
    const passwordFile = join(root, 'password');
    writeFileSync(passwordFile, `${PASSWORD}\n`);
    const printed: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((line: string) => void printed.push(line));
    await createUser({ dataDir, username: 'cli-made', role: 'viewer', passwordFile, json: true });
    vi.restoreAllMocks();
    const { totpSecret } = JSON.parse(printed[0]!) as { totpSecret: string };
    expect(storedSeed('cli-made')).not.toContain(totpSecret);
    expect((await login(app, 'cli-made', currentTotp(totpSecret))).statusCode).toBe(200);
  });
});
