import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { edgeClientArgs } from '../../cli/processes.ts';
import { enrollmentTokenOf } from '../../client/node/edge.ts';
import { cryptoReady } from '../../shared/crypto/sodium.ts';
import { startHarness, type Harness } from '../support/harness.ts';

/** A client's enrollment token never appears in its argument list, which every user of the machine can read (`ps`). */

const bin = fileURLToPath(new URL('../../bin/tributary.js', import.meta.url));
const procFile = (child: ChildProcess, file: 'cmdline' | 'environ') => readFileSync(`/proc/${child.pid}/${file}`, 'utf8').split('\0');

describe('enrollment tokens of spawned clients', () => {
  let h: Harness;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    await cryptoReady();
    h = await startHarness();
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await h.close();
  });

  /** Resolves once the task lists `count` joined clients: their tokens reached them and enrolled them. */
  const joined = (taskId: number, count: number) => h.waitFor(async () => (await h.asAdmin({ url: `/api/tasks/${taskId}/clients` })).json().length >= count);

  it('hands a spawned client its token through the environment, never argv', async () => {
    const task = await h.createTask({ name: 'argv', shards: 2, trainLimit: 1_200, testLimit: 500 });
    const child = h.spawnClient(task.id, 0);
    children.push(child);
    await joined(task.id, 1);
    const token = h.token(task.id);
    expect(procFile(child, 'cmdline').some((arg) => arg.includes(token))).toBe(false);
    expect(procFile(child, 'environ')).toContain(`TRIBUTARY_TOKEN=${token}`);
  });

  it('reads the token from --token-file', async () => {
    const task = await h.createTask({ name: 'token file', shards: 2, trainLimit: 1_200, testLimit: 500 });
    const file = join(h.dataDir, 'token');
    writeFileSync(file, `${h.token(task.id)}\n`, { mode: 0o600 });
    const { TRIBUTARY_TOKEN: _none, ...env } = process.env;
    const child = spawn(process.execPath, [bin, ...edgeClientArgs(h.url, task.id, 1, [], h.dataDir, ['--token-file', file])], { stdio: ['ignore', 'ignore', 'inherit'], env });
    children.push(child);
    await joined(task.id, 1);
    expect(procFile(child, 'cmdline').join(' ')).not.toContain(h.token(task.id));
  });

  it('takes --token first, then --token-file, then TRIBUTARY_TOKEN', () => {
    const file = join(h.dataDir, 'other-token');
    writeFileSync(file, ' from-file \n');
    const env = { TRIBUTARY_TOKEN: 'from-env' };
    expect(enrollmentTokenOf({ token: 'from-flag', tokenFile: file }, env)).toBe('from-flag');
    expect(enrollmentTokenOf({ tokenFile: file }, env)).toBe('from-file');
    expect(enrollmentTokenOf({}, env)).toBe('from-env');
    expect(enrollmentTokenOf({}, {})).toBeUndefined();
    writeFileSync(file, '\n');
    expect(() => enrollmentTokenOf({ tokenFile: file }, env)).toThrow(expect.objectContaining({ code: 'ENROLLMENT_TOKEN_INVALID' }));
  });
});
