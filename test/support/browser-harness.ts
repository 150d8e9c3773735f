import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { chromium, type Browser, type Page } from 'playwright-core';
import { buildApp, type App } from '../../server/app.ts';
import { currentTotp } from '../../server/auth/totp.ts';

/** Real Chromium (Debian's, never a downloaded one) driving the built web app of a real server on loopback. */

export const ARTIFACTS = join(process.cwd(), 'test-results');

const CHROMIUM_FLAGS = ['--headless=new', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
/** WebGPU without a GPU: Chromium's SwiftShader adapter. */
export const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader'];

export function launchChromium(extra: string[] = []): Promise<Browser> {
  return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: [...CHROMIUM_FLAGS, ...extra] });
}

export interface WebServer {
  app: App;
  url: string;
  setupToken: string;
  close(): Promise<void>;
}

export async function startWebServer(): Promise<WebServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tributary-e2e-'));
  const app = await buildApp({ dataDir, logger: pino({ level: 'silent' }) });
  const url = await app.http.listen({ port: 0, host: '127.0.0.1' });
  const setupToken = (await app.accounts.setupTokenIfNeeded())!;
  mkdirSync(ARTIFACTS, { recursive: true });
  return {
    app,
    url,
    setupToken,
    async close() {
      await app.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Creates the first admin through the setup page, then signs in with a code from its TOTP secret. */
export async function setUpAdmin(page: Page, server: WebServer, username = 'root', password = 'a long admin password'): Promise<void> {
  await page.goto(`${server.url}/admin/#setup=${server.setupToken}`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password (12 characters or more)').fill(password);
  await page.getByRole('button', { name: 'Create admin' }).click();
  const secret = (await page.locator('#totp-secret').textContent())!;
  await page.getByRole('button', { name: 'I saved them — sign in' }).click();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('Code from your authenticator (or a recovery code)').fill(currentTotp(secret));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Tasks' }).waitFor();
}
