import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../server/app.ts';

describe('web pages when the web app is not built', () => {
  let app: App;
  let dataDir: string;
  const warnings: string[] = [];

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'tributary-pages-'));
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push((JSON.parse(line) as { msg: string }).msg) });
    app = await buildApp({ dataDir, logger, webRoot: join(dataDir, 'no-such-build') });
  });
  afterAll(async () => {
    await app.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('says so once at start', () => {
    expect(warnings.filter((w) => w.includes('web app is not built'))).toEqual(['the web app is not built: run npm run build (npm start does it)']);
  });

  it('answers the pages, and anything under them, with how to build it', async () => {
    for (const url of ['/', '/admin', '/admin/', '/admin/index.html', '/contribute/', '/contribute/assets/app.js']) {
      const res = await app.http.inject({ url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['cache-control'], url).toBe('no-store');
      expect(res.headers['content-type'], url).toMatch(/^text\/plain/);
      expect(res.body, url).toBe('the web app is not built: run npm run build (npm start does it)\n');
    }
  });

  it('leaves the API and unknown paths as they are', async () => {
    expect((await app.http.inject({ url: '/healthz' })).statusCode).toBe(200);
    const unknown = await app.http.inject({ url: '/api/no-such-route' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('web pages when the web app is built', () => {
  it('serves the files under the web root', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tributary-pages-'));
    const webRoot = join(dataDir, 'web');
    mkdirSync(join(webRoot, 'admin'), { recursive: true });
    writeFileSync(join(webRoot, 'admin', 'index.html'), '<!doctype html><title>admin</title>');
    const app = await buildApp({ dataDir, logger: pino({ level: 'silent' }), webRoot });
    try {
      const res = await app.http.inject({ url: '/admin/' });
      expect(res.statusCode).toBe(200);
      expect(res.body).toContain('<title>admin</title>');
    } finally {
      await app.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
