import { expect, vi } from 'vitest';
import { TributaryError, type ErrorCode } from '../../../shared/errors.ts';
import type { AccountStore, AuditLog, EnrollmentStore } from '../../../server/auth/model.ts';
import type { Store } from '../../../server/store/store.ts';
/**
 * One conformance suite per storage interface, run against every implementation (SQLite
 * today, PostgreSQL later): what the server relies on, written once. Each test gets a
 * fresh, empty backend from `open` and hands it back with `close`.
 *
 * Timestamps the backend sets (createdAt, revokedAt, at) are only required to be dates
 * in a string: a backend may take them from its own clock. Where a test must tell two
 * moments apart it moves the process's Date on (fake timers, Date only), which changes
 * nothing for a backend that uses its own clock.
 */

export interface StoreHarness {
  store: Store;
  /** A second store over the same data, as a restarted server opens it (the first one closed). */
  reopen(): Promise<Store>;
  /** Closes whatever the harness opened and deletes the data. */
  close(): Promise<void>;
}

export interface AccountStoreHarness {
  accounts: AccountStore;
  close(): Promise<void>;
}

export interface EnrollmentStoreHarness {
  enrollments: EnrollmentStore;
  /** The tasks enrollments belong to, in the same database. */
  tasks: Store;
  close(): Promise<void>;
}

export interface AuditLogHarness {
  audit: AuditLog;
  close(): Promise<void>;
}

export async function expectRejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.fail('expected the call to be refused'),
    (error: unknown) => error,
  );
}

export async function expectRejectsWithCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const error = await expectRejection(promise);
  expect(error).toBeInstanceOf(TributaryError);
  expect((error as TributaryError).code).toBe(code);
}

export function expectDateString(value: unknown): void {
  expect(typeof value).toBe('string');
  expect(Number.isNaN(Date.parse(value as string))).toBe(false);
}

/** Moves the process's Date on (only Date: backends keep their real timers). */
export function useFakeDate(at: number): void {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(at);
}

