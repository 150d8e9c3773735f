/**
 * Failed logins per username, whatever address they come from: `limit` in a window of
 * `windowMs` (a fixed window from the first failure), then RATE_LIMITED until it ends.
 * Unknown usernames are counted alike, so the limit does not tell which names exist. An
 * attempt counts as it begins (a success gives it back), so a burst of concurrent guesses
 * cannot overdraw the limit while their password checks run.
 *
 * In memory, at most `tracked` usernames: past that the oldest windows go first (a flood
 * of names from many addresses could so reset one account's count early; the per-address
 * limit keeps such a flood slow).
 */
export class LoginThrottle {
  private readonly windows = new Map<string, { start: number; attempts: number }>();

  constructor(
    private readonly limit = 10,
    private readonly windowMs = 15 * 60_000,
    private readonly tracked = 10_000,
  ) {}

  /** Counts an attempt at `username`; false (and nothing counted) once its window is used up. */
  begin(username: string, now = Date.now()): boolean {
    let window = this.windows.get(username);
    if (!window || now - window.start >= this.windowMs) {
      this.windows.delete(username);
      this.makeRoom(now);
      window = { start: now, attempts: 0 };
      this.windows.set(username, window); // insertion order stays start order
    }
    if (window.attempts >= this.limit) return false;
    window.attempts++;
    return true;
  }

  /** The attempt succeeded: it does not count against the account. */
  succeeded(username: string): void {
    const window = this.windows.get(username);
    if (window && window.attempts > 0) window.attempts--;
  }

  get size(): number {
    return this.windows.size;
  }

  private makeRoom(now: number): void {
    for (const [name, window] of this.windows) {
      if (this.windows.size < this.tracked && now - window.start < this.windowMs) return;
      this.windows.delete(name);
    }
  }
}
