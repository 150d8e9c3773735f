import { expect } from 'vitest';
import { TributaryError, type ErrorCode } from '../../shared/errors.ts';

/** Asserts that `fn` throws a TributaryError with the given code. */
export function expectCode(fn: () => unknown, code: ErrorCode): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(TributaryError);
    expect((error as TributaryError).code).toBe(code);
    return;
  }
  expect.fail(`expected ${code} to be thrown`);
}
