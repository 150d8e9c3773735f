import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { superviseClients } from '../../cli/supervise.ts';

/** A stand-in child process: the test says when and how it exits. */
const child = () => new EventEmitter() as unknown as ChildProcess;
const exit = (c: ChildProcess, code: number | null, signal: NodeJS.Signals | null = null) => (c as unknown as EventEmitter).emit('exit', code, signal);

function supervised(count: number, expected: (index: number, signal: NodeJS.Signals | null) => boolean = () => false) {
  const spawned: Array<{ index: number; restarted: boolean; process: ChildProcess }> = [];
  const reports: string[] = [];
  const supervisor = superviseClients(count, (index, restarted) => {
    const process = child();
    spawned.push({ index, restarted, process });
    return process;
  }, { expected, report: (line) => reports.push(line) });
  return { spawned, reports, supervisor };
}

describe('the demo supervising its client processes', () => {
  it('restarts a client that dies unexpectedly, and reports it', () => {
    const { spawned, reports, supervisor } = supervised(2);
    exit(spawned[1]!.process, 1);
    expect(spawned.map((s) => [s.index, s.restarted])).toEqual([[0, false], [1, false], [1, true]]);
    expect(reports).toEqual(['client 1 died (exit code 1); restarting it']);
    expect(supervisor.finish()).toEqual({ restarts: 1, lost: 0 });
  });

  it('counts a client lost once it has died more times than it may be restarted', () => {
    const { spawned, reports, supervisor } = supervised(1);
    for (let i = 0; i < 4; i++) exit(spawned.at(-1)!.process, null, 'SIGSEGV');
    expect(spawned).toHaveLength(4); // the first and three restarts
    expect(reports.at(-1)).toBe('client 0 died (signal SIGSEGV) 4 times; not restarting it');
    expect(supervisor.finish()).toEqual({ restarts: 3, lost: 1 });
  });

  it('leaves alone a planned crash, a clean exit, and everything after the demo finishes', () => {
    const { spawned, reports, supervisor } = supervised(3, (index, signal) => index === 0 && signal === 'SIGKILL');
    exit(spawned[0]!.process, null, 'SIGKILL');
    exit(spawned[1]!.process, 0);
    expect(supervisor.finish()).toEqual({ restarts: 0, lost: 0 });
    exit(spawned[2]!.process, null, 'SIGTERM'); // the demo's own shutdown
    expect(spawned).toHaveLength(3);
    expect(reports).toEqual([]);
  });
});
