import { describe, expect, it } from 'vitest';
import { LoginThrottle } from '../../server/auth/login-throttle.ts';

describe('LoginThrottle', () => {
  it('takes `limit` attempts at a name in a window, then none until the window ends', () => {
    const throttle = new LoginThrottle(3, 1_000);
    expect([0, 10, 20, 30].map((t) => throttle.begin('ada', t))).toEqual([true, true, true, false]);
    expect(throttle.begin('grace', 30)).toBe(true);
    expect(throttle.begin('ada', 999)).toBe(false);
    expect(throttle.begin('ada', 1_000)).toBe(true);
  });

  it('counts an attempt as it begins, so concurrent ones cannot overdraw; a success gives its attempt back', () => {
    const throttle = new LoginThrottle(2, 1_000);
    expect([throttle.begin('ada', 0), throttle.begin('ada', 0), throttle.begin('ada', 0)]).toEqual([true, true, false]);
    throttle.succeeded('ada');
    expect(throttle.begin('ada', 1)).toBe(true);
    expect(throttle.begin('ada', 2)).toBe(false);
  });

  it('keeps at most `tracked` names however many are tried, dropping ended windows first, then the oldest', () => {
    const throttle = new LoginThrottle(10, 1_000, 100);
    for (let i = 0; i < 1_000; i++) throttle.begin(`name-${i}`, i);
    expect(throttle.size).toBe(100);
    throttle.begin('late', 5_000); // every window has ended by now
    expect(throttle.size).toBe(1);
  });
});
