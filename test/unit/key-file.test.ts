import * as fs from 'node:fs';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadOrCreateKeyFile } from '../../node/key-file.ts';
import { cryptoReady, generateSigningKeyPair, toBase64 } from '../../shared/crypto/sodium.ts';

// Lets a test make another process win the race for the file at the moment this one links its own.
vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs')>();
  return { ...actual, linkSync: vi.fn(actual.linkSync) };
});

describe('loadOrCreateKeyFile', () => {
  const dirs: string[] = [];
  const folder = () => {
    const dir = mkdtempSync(join(tmpdir(), 'tributary-key-'));
    dirs.push(dir);
    return dir;
  };
  beforeAll(() => cryptoReady());
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('creates the key owner-only in a new folder, and reads the same key back', () => {
    const file = join(folder(), 'nested', 'identity.json');
    const made = loadOrCreateKeyFile(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(loadOrCreateKeyFile(file)).toEqual(made);
    expect(readdirSync(join(file, '..'))).toEqual(['identity.json']);
  });

  it('keeps the key of a process that wrote the file first, never overwriting it', async () => {
    const actual = await vi.importActual<typeof import('node:fs')>('node:fs');
    const file = join(folder(), 'server-key.json');
    const theirs = generateSigningKeyPair();
    const stored = JSON.stringify({ publicKey: toBase64(theirs.publicKey), secretKey: toBase64(theirs.secretKey) });
    vi.mocked(fs.linkSync).mockImplementationOnce((from, to) => {
      writeFileSync(to, stored, { mode: 0o600 }); // the other process links first
      actual.linkSync(from, to);
    });
    expect(loadOrCreateKeyFile(file)).toEqual(theirs);
    expect(readFileSync(file, 'utf8')).toBe(stored);
    expect(readdirSync(join(file, '..'))).toEqual(['server-key.json']); // nothing left aside
  });

  it('refuses a key file it cannot read rather than replacing it', () => {
    const file = join(folder(), 'identity.json');
    writeFileSync(file, 'not json');
    expect(() => loadOrCreateKeyFile(file)).toThrow(SyntaxError);
    expect(readFileSync(file, 'utf8')).toBe('not json');
  });
});
