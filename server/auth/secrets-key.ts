import { existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fromBase64, randomBytes, SECRETBOX_KEY_BYTES, secretboxDecrypt, secretboxEncrypt, toBase64, utf8 } from '../../shared/crypto/sodium.ts';
import { TributaryError } from '../../shared/errors.ts';

/**
 * The key TOTP seeds are sealed with before they are stored: kept outside the database
 * (by default `totp.key` in the state folder, owner-only), so a copy of the database alone
 * holds no usable seed. Losing it loses every stored seed, and the server refuses to start
 * with another key (Accounts.sealStoredSeeds). `tributary admin` uses the same file.
 */
export const DEFAULT_SECRETS_KEY_FILE = 'totp.key';

/** Seeds as stored: this prefix, then base64 of nonce ‖ secretbox. Base32 seeds never hold a ':'. */
const SEALED = 'sb1:';

export interface SeedBox {
  seal(seed: string): string;
  /** The seed a stored value holds; a seed stored in clear (an older database) is taken as it is. */
  open(stored: string): string;
  isSealed(stored: string): boolean;
}

function readKey(file: string): Uint8Array {
  const text = readFileSync(file, 'utf8').trim();
  let key: Uint8Array | undefined;
  try {
    key = fromBase64(text);
  } catch {
    key = undefined;
  }
  if (key?.length !== SECRETBOX_KEY_BYTES) throw new TributaryError('SECRETS_KEY_INVALID', `${file} does not hold a ${SECRETBOX_KEY_BYTES}-byte key in base64`);
  return key;
}

const errno = (error: unknown) => (error as NodeJS.ErrnoException).code;

/**
 * The key in `file`, made (owner-only) if there is none. The server and `tributary admin`
 * may start at once: the key is written aside and linked into place, which never
 * replaces a file, so both end up with the same key. Call after `cryptoReady()`.
 */
export function loadOrCreateSecretsKey(file: string): Uint8Array {
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const aside = `${file}.${Buffer.from(randomBytes(6)).toString('hex')}.tmp`;
    writeFileSync(aside, `${toBase64(randomBytes(SECRETBOX_KEY_BYTES))}\n`, { mode: 0o600, flag: 'wx' });
    try {
      linkSync(aside, file);
    } catch (error) {
      if (errno(error) !== 'EEXIST') throw error;
    } finally {
      unlinkSync(aside);
    }
  }
  return readKey(file);
}

/**
 * The seed box of a state folder, its key in `keyFile` (default `totp.key` there). The key
 * is made at the first seal, never to open: a missing key while the database holds sealed
 * seeds is a mistake to report (SECRETS_KEY_INVALID), not a reason for a second key.
 */
export function stateSeedBox(dataDir: string, keyFile?: string): SeedBox {
  const file = keyFile ?? join(dataDir, DEFAULT_SECRETS_KEY_FILE);
  let key: Uint8Array | undefined;
  const existingKey = () => {
    if (!key && !existsSync(file)) throw new TributaryError('SECRETS_KEY_INVALID', `the database holds sealed TOTP seeds but there is no key at ${file} (see --secrets-key-file)`);
    return (key ??= readKey(file));
  };
  const isSealed = (stored: string) => stored.startsWith(SEALED);
  return {
    isSealed,
    seal: (seed) => SEALED + toBase64(secretboxEncrypt(utf8(seed), (key ??= loadOrCreateSecretsKey(file)))),
    open(stored) {
      if (!isSealed(stored)) return stored;
      const opening = existingKey();
      try {
        return Buffer.from(secretboxDecrypt(fromBase64(stored.slice(SEALED.length)), opening)).toString('utf8');
      } catch {
        throw new TributaryError('SECRETS_KEY_INVALID', `the key in ${file} does not open a stored TOTP seed (is it the key the server was started with? see --secrets-key-file)`);
      }
    },
  };
}
