import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, launchChromium, setUpAdmin, startWebServer, WEBGPU_FLAGS, type WebServer } from '../support/browser-harness.ts';

/**
 * The browser side end to end, in Debian's Chromium: tasks created and started by
 * clicking in /admin, three browser contexts contributing from /contribute, WebGPU on
 * SwiftShader checked against the CPU backend, and the SDK embed example.
 */
describe('in the browser', () => {
  let server: WebServer;
  let browser: Browser;
  let admin: Page;
  beforeAll(async () => {
    server = await startWebServer();
    browser = await launchChromium();
    admin = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    await setUpAdmin(admin, server);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** Fills the new-task form and starts the task, all by clicking; returns its id. */
  async function createAndStart(name: string, secure: boolean): Promise<number> {
    await admin.getByRole('button', { name: '+ New task' }).click();
    await admin.getByLabel('Name').fill(name);
    await admin.getByLabel('Rounds').fill('2');
    await admin.getByLabel('Clients per round').fill('3');
    if (secure) await admin.getByLabel('Secure aggregation (the server learns only the sum)').check();
    await admin.getByText('More settings').click();
    await admin.getByLabel('Training images used (0: all)').fill('4500');
    await admin.getByLabel('Test images evaluated (0: all)').fill('2000');
    await admin.getByRole('button', { name: 'Create task' }).click();
    await admin.getByRole('button', { name: 'Start' }).click();
    await admin.locator('#task-status', { hasText: 'running' }).waitFor();
    const id = Number((await admin.locator('nav[aria-label="Tasks"] button:not(.secondary)').first().getAttribute('data-task'))!);
    expect(id).toBeGreaterThan(0);
    return id;
  }

  async function contributors(taskId: number, count: number): Promise<Page[]> {
    const pages: Page[] = [];
    for (let i = 0; i < count; i++) {
      const page = await (await browser.newContext()).newPage();
      await page.goto(`${server.url}/contribute/?task=${taskId}`);
      await page.getByRole('button', { name: 'I agree — start contributing' }).click();
      pages.push(page);
    }
    return pages;
  }

  async function accuracySeries(): Promise<number[]> {
    const series = await admin.locator('[data-chart="Accuracy and loss"]').getAttribute('data-series');
    return (JSON.parse(series ?? '[[]]') as number[][])[0]!;
  }

  for (const secure of [false, true]) {
    it(`runs a ${secure ? 'secure' : 'plain'} task made in /admin with three browsers contributing, and the chart shows accuracy rising`, { timeout: 600_000 }, async () => {
      const taskId = await createAndStart(secure ? 'secure in the browser' : 'plain in the browser', secure);
      const pages = await contributors(taskId, 3);
      await admin.locator('#task-status', { hasText: 'completed' }).waitFor({ timeout: 540_000 });
      const accuracy = await accuracySeries();
      expect(accuracy.length).toBeGreaterThanOrEqual(2);
      expect(accuracy.at(-1)!).toBeGreaterThan(accuracy[0]!);
      const rounds = await server.app.store.listRounds(taskId);
      expect(rounds.map((r) => r.participants)).toEqual([3, 3]);
      for (const page of pages) await expect.poll(() => page.locator('#local').textContent()).toMatch(/local accuracy/);
      if (!secure) {
        await admin.screenshot({ path: join(ARTIFACTS, 'admin.png'), fullPage: true });
        await pages[0]!.screenshot({ path: join(ARTIFACTS, 'contribute.png'), fullPage: true });
      }
      for (const page of pages) await page.context().close();
    });
  }

  /** A task made over the API (the clicking is tested above): one client per round. */
  async function soloTask(name: string): Promise<number> {
    const { withTaskDefaults } = await import('../../shared/protocol/task.ts');
    const task = await server.app.store.createTask(withTaskDefaults({ name, clientsPerRound: 1, shards: 1, rounds: 1, trainLimit: 1_000, testLimit: 500, openEnrollment: true }));
    await server.app.coordinator.start(task.id);
    return task.id;
  }

  it('trains on WebGPU (SwiftShader) once its first step matches the CPU backend within tolerance', { timeout: 300_000 }, async () => {
    const gpuBrowser = await launchChromium(WEBGPU_FLAGS);
    try {
      const taskId = await soloTask('webgpu');
      const page = await gpuBrowser.newPage();
      await page.goto(`${server.url}/contribute/?task=${taskId}`);
      await page.getByRole('button', { name: 'I agree — start contributing' }).click();
      const backend = page.locator('#backend[data-backend]');
      await backend.waitFor({ timeout: 240_000 });
      expect(await backend.getAttribute('data-backend')).toBe('webgpu');
      expect(await page.locator('#backend').textContent()).toMatch(/swiftshader/i);
      const error = Number(await backend.getAttribute('data-relative-error'));
      expect(error).toBeGreaterThanOrEqual(0);
      expect(error).toBeLessThanOrEqual(1e-3);
      await expect.poll(() => page.locator('#local').textContent(), { timeout: 240_000 }).toMatch(/local accuracy/);
      // The page shows its local result once uploaded; the server records the round after aggregating and evaluating.
      await expect.poll(async () => (await server.app.store.listRounds(taskId))[0], { timeout: 60_000 }).toMatchObject({ participants: 1 });
    } finally {
      await gpuBrowser.close();
    }
  });

  it('trains and uploads from the SDK embed example', { timeout: 300_000 }, async () => {
    const taskId = await soloTask('embedded');
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${server.url}/examples/embed.html?task=${taskId}`);
    await expect.poll(() => page.locator('#log').textContent(), { timeout: 240_000 }).toMatch(/round 1: sent \d+ bytes/);
    await expect.poll(() => page.locator('#log').textContent(), { timeout: 60_000 }).toMatch(/global model v1/);
    expect(await server.app.store.listRounds(taskId)).toHaveLength(1);
    await page.screenshot({ path: join(ARTIFACTS, 'embed.png') });
    await page.context().close();
  });
});
