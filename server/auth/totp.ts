import { Secret, TOTP } from 'otpauth';

/** RFC 6238 one-time codes (SHA-1, 6 digits, 30 s: what every authenticator app reads). */
const PERIOD_S = 30;

function totp(secret: string, label = 'tributary'): TOTP {
  return new TOTP({ issuer: 'Tributary', label, algorithm: 'SHA1', digits: 6, period: PERIOD_S, secret: Secret.fromBase32(secret) });
}

/** A fresh secret and its otpauth:// URI (what a QR code carries). */
export function newTotp(username: string): { secret: string; uri: string } {
  const secret = new Secret({ size: 20 }).base32;
  return { secret, uri: totp(secret, username).toString() };
}

/**
 * The time step a code belongs to (±1 step of clock skew), or null. A step at or before
 * `lastStep` is refused: each code works once, so a code seen over a shoulder or in a log
 * cannot be replayed.
 */
export function acceptTotp(secret: string, code: string, lastStep: number, now = Date.now()): number | null {
  if (!/^\d{6}$/.test(code)) return null;
  const delta = totp(secret).validate({ token: code, timestamp: now, window: 1 });
  if (delta === null) return null;
  const step = Math.floor(now / 1000 / PERIOD_S) + delta;
  return step > lastStep ? step : null;
}

/** The current code: for tests and the CLI's self-check, never sent by the server. */
export function currentTotp(secret: string, now = Date.now()): string {
  return totp(secret).generate({ timestamp: now });
}
