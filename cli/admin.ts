import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { Accounts } from '../server/auth/accounts.ts';
import type { AccountStore, AuditLog, Role } from '../server/auth/model.ts';
import { stateSeedBox } from '../server/auth/secrets-key.ts';
import { newSecret } from '../server/auth/secrets.ts';
import { openDatabase } from '../server/store/database.ts';
import { openPostgresStores } from '../server/store/postgres/open.ts';
import { SqliteAccounts } from '../server/store/sqlite-accounts.ts';
import { SqliteAudit } from '../server/store/sqlite-audit.ts';
import { cryptoReady } from '../shared/crypto/sodium.ts';

/**
 * `tributary admin …`: account work straight on a server's state (whoever can read it is
 * trusted), also while the server runs: the SQLite file in its data folder, or with
 * `--database postgres://…` its PostgreSQL database; both take a second writer. The key
 * sealing TOTP seeds is in the data folder (or --secrets-key-file) either way.
 */

interface StateOptions {
  dataDir: string;
  secretsKeyFile?: string | undefined;
  /** `postgres://…`: the database `serve --database` runs on, instead of the SQLite file. */
  database?: string | undefined;
}

/** The account and audit stores of the server's state, and what closes them. */
async function openStores({ dataDir, database }: StateOptions): Promise<{ accounts: AccountStore; audit: AuditLog; close(): Promise<void> }> {
  if (database) return openPostgresStores(database);
  const db = openDatabase(join(dataDir, 'tributary.db'));
  return {
    accounts: new SqliteAccounts(db),
    audit: new SqliteAudit(db),
    async close() {
      db.close();
    },
  };
}

async function open(options: StateOptions): Promise<{ accounts: Accounts; close(): Promise<void> }> {
  await cryptoReady();
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const stores = await openStores(options);
  const accounts = new Accounts(stores.accounts, stores.audit, stateSeedBox(options.dataDir, options.secretsKeyFile));
  try {
    await accounts.sealStoredSeeds();
  } catch (error) {
    await stores.close();
    throw error;
  }
  return { accounts, close: () => stores.close() };
}

async function readPassword(file: string | undefined): Promise<string> {
  if (file) return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  const password = await rl.question('password (12+ characters): ');
  rl.close();
  return password;
}

export async function createUser(options: StateOptions & { username: string; role: Role; passwordFile?: string; json: boolean }): Promise<void> {
  const { accounts, close } = await open(options);
  try {
    const created = await accounts.createUser(options.username, await readPassword(options.passwordFile), options.role, { actor: 'cli', ip: '' });
    if (options.json) {
      console.log(JSON.stringify({ username: created.user.username, role: created.user.role, totpSecret: created.totpSecret, totpUri: created.totpUri, recoveryCodes: created.recoveryCodes }));
      return;
    }
    console.log(`created ${created.user.role} ${created.user.username}`);
    console.log(`TOTP secret (add it to an authenticator app): ${created.totpSecret}`);
    console.log(`  or as a URI: ${created.totpUri}`);
    console.log('recovery codes (each works once; keep them offline):');
    for (const code of created.recoveryCodes) console.log(`  ${code}`);
  } finally {
    await close();
  }
}

/** An API token for scripts; with `create`, makes the user first (a random password nobody knows: tokens only). */
export async function createApiToken(options: StateOptions & { username: string; name: string; create: boolean; role: Role; json: boolean }): Promise<void> {
  const { accounts, close } = await open(options);
  try {
    let user = await accounts.userByName(options.username);
    if (!user && options.create) user = (await accounts.createUser(options.username, newSecret('pw'), options.role, { actor: 'cli', ip: '' })).user;
    if (!user) throw new Error(`no user ${options.username} (add --create to make one)`);
    const { token, id } = await accounts.createApiToken(user, options.name, '');
    console.log(options.json ? JSON.stringify({ id, token, username: user.username, role: user.role }) : token);
  } finally {
    await close();
  }
}
