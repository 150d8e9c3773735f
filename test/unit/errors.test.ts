import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TributaryError, errorCatalog, toErrorBody } from '../../shared/errors.ts';

describe('error catalogue', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Map(
    [...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])]),
  );

  it('documents every code with its HTTP status, and nothing else', () => {
    const catalog = new Map(Object.entries(errorCatalog).map(([code, e]) => [code, e.status]));
    expect(documented).toEqual(catalog);
  });

  it('turns unknown failures into INTERNAL without leaking their message', () => {
    expect(toErrorBody(new Error('secret path /etc/x'))).toEqual({ code: 'INTERNAL', message: 'Internal error' });
    expect(toErrorBody(new TributaryError('TASK_NOT_FOUND', '7'))).toEqual({ code: 'TASK_NOT_FOUND', message: 'No task with that id: 7' });
  });
});
