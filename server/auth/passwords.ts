import argon2 from 'argon2';
import { TributaryError } from '../../shared/errors.ts';

/** argon2id at OWASP's recommended minimum (19 MiB, 2 passes): ~30 ms a check here. */
const OPTIONS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 256;

export async function hashPassword(password: string): Promise<string> {
  if (password.length < PASSWORD_MIN || password.length > PASSWORD_MAX) {
    throw new TributaryError('BAD_REQUEST', `passwords are ${PASSWORD_MIN} to ${PASSWORD_MAX} characters`);
  }
  return argon2.hash(password, OPTIONS);
}

let decoy: Promise<string> | undefined;

/**
 * Checks a password against a stored hash, or against a decoy hash when the user is
 * unknown: the answer takes as long either way, so timing does not reveal usernames.
 */
export async function passwordMatches(stored: string | undefined, password: string): Promise<boolean> {
  decoy ??= argon2.hash('decoy password that matches nothing', OPTIONS);
  const target = stored ?? (await decoy);
  try {
    return (await argon2.verify(target, password)) && stored !== undefined;
  } catch {
    return false;
  }
}
