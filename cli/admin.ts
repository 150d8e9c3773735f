import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { Accounts } from '../server/auth/accounts.ts';
import type { Role } from '../server/auth/model.ts';
import { stateSeedBox } from '../server/auth/secrets-key.ts';
import { newSecret } from '../server/auth/secrets.ts';
import { openDatabase } from '../server/store/database.ts';
import { SqliteAccounts } from '../server/store/sqlite-accounts.ts';
import { SqliteAudit } from '../server/store/sqlite-audit.ts';
import { cryptoReady } from '../shared/crypto/sodium.ts';

/**
 * `tributary admin …`: account work straight on a server's state folder (whoever can
 * read it is trusted), also while the server runs: SQLite takes both.
 */

async function open(dataDir: string, secretsKeyFile: string | undefined): Promise<{ accounts: Accounts; close(): void }> {
  await cryptoReady();
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const db = openDatabase(join(dataDir, 'tributary.db'));
  const accounts = new Accounts(new SqliteAccounts(db), new SqliteAudit(db), stateSeedBox(dataDir, secretsKeyFile));
  try {
    await accounts.sealStoredSeeds();
  } catch (error) {
    db.close();
    throw error;
  }
  return { accounts, close: () => db.close() };
}

async function readPassword(file: string | undefined): Promise<string> {
  if (file) return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  const password = await rl.question('password (12+ characters): ');
  rl.close();
  return password;
}

export async function createUser(options: { dataDir: string; username: string; role: Role; passwordFile?: string; secretsKeyFile?: string; json: boolean }): Promise<void> {
  const { accounts, close } = await open(options.dataDir, options.secretsKeyFile);
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
    close();
  }
}

/** An API token for scripts; with `create`, makes the user first (a random password nobody knows: tokens only). */
export async function createApiToken(options: { dataDir: string; username: string; name: string; create: boolean; role: Role; secretsKeyFile?: string; json: boolean }): Promise<void> {
  const { accounts, close } = await open(options.dataDir, options.secretsKeyFile);
  try {
    let user = await accounts.userByName(options.username);
    if (!user && options.create) user = (await accounts.createUser(options.username, newSecret('pw'), options.role, { actor: 'cli', ip: '' })).user;
    if (!user) throw new Error(`no user ${options.username} (add --create to make one)`);
    const { token, id } = await accounts.createApiToken(user, options.name, '');
    console.log(options.json ? JSON.stringify({ id, token, username: user.username, role: user.role }) : token);
  } finally {
    close();
  }
}
