import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const run = promisify(execFile);

/** Exit code and output of a command run from the project root. */
async function outcome(args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, args, { cwd: root });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? 1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

// Each consumer (test/types/<condition>/consumer.js) imports `tributary/client` as a package
// user would, through package.json `exports`: the core names everywhere, each runtime's
// helpers only under its condition (a name that must be absent is a @ts-expect-error).
describe('the SDK as a consumer sees it', () => {
  for (const condition of ['browser', 'node', 'neutral']) {
    it(`type-checks a consumer under the ${condition} condition`, async () => {
      expect(await outcome([tsc, '-p', `test/types/${condition}`])).toEqual({ code: 0, output: '' });
    });
  }

  it('resolves to the Node entry when Node imports it', async () => {
    const resolved = await outcome(['--input-type=module', '-e', "console.log(import.meta.resolve('tributary/client'))"]);
    expect(resolved).toEqual({ code: 0, output: `${new URL('client/node/index.ts', `file://${root}`).href}\n` });
  });
});
