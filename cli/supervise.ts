import type { ChildProcess } from 'node:child_process';

/** Restarts a client this many times before counting it lost. */
const MAX_CLIENT_RESTARTS = 3;

/**
 * Keeps the demo's client processes running: one that dies unexpectedly (not a planned
 * --drop crash, not the demo's own shutdown) is reported and started again, up to
 * MAX_CLIENT_RESTARTS times; after that it is lost, and the demo fails.
 */
export function superviseClients(
  count: number,
  spawn: (index: number, restarted: boolean) => ChildProcess,
  policy: { expected: (index: number, signal: NodeJS.Signals | null) => boolean; report: (line: string) => void },
): { finish(): { restarts: number; lost: number } } {
  let finishing = false;
  let restarts = 0;
  let lost = 0;
  const watch = (index: number, child: ChildProcess, tries: number) => {
    child.once('exit', (code, signal) => {
      if (finishing || code === 0 || policy.expected(index, signal)) return;
      const how = signal ? `signal ${signal}` : `exit code ${code}`;
      if (tries >= MAX_CLIENT_RESTARTS) {
        lost++;
        policy.report(`client ${index} died (${how}) ${tries + 1} times; not restarting it`);
        return;
      }
      restarts++;
      policy.report(`client ${index} died (${how}); restarting it`);
      watch(index, spawn(index, true), tries + 1);
    });
  };
  for (let i = 0; i < count; i++) watch(i, spawn(i, false), 0);
  return {
    finish() {
      finishing = true;
      return { restarts, lost };
    },
  };
}
