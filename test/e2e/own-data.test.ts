import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLocalData } from '../../client/node/local-data.ts';
import type { ModelSpec } from '../../shared/ml/model-spec.ts';
import type { DataSchema, ImageSchema, TabularSchema, TextSchema } from '../../shared/data/schema.ts';
import { withTaskDefaults } from '../../shared/protocol/task.ts';
import { ARTIFACTS, launchChromium, startWebServer, type WebServer } from '../support/browser-harness.ts';

/**
 * The contribute page training on the person's own files, one test per kind of data: the
 * page reads them in the browser, shows a preview, the valid count and the samples it left
 * out, and trains on the valid ones once the person says so; a round then completes with
 * this browser's update alone.
 */
describe('contributing your own data from the browser', () => {
  let server: WebServer;
  let browser: Browser;
  let files: string;
  beforeAll(async () => {
    server = await startWebServer();
    browser = await launchChromium();
    files = mkdtempSync(join(tmpdir(), 'tributary-own-data-'));
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    rmSync(files, { recursive: true, force: true });
  });

  const HOLDOUT = 0.2;

  /** A task on its devices' own data, one round of one client, running. */
  async function ownTask(name: string, data: DataSchema, model: ModelSpec): Promise<number> {
    const spec = withTaskDefaults({
      name, data, model, rounds: 1, clientsPerRound: 1, minUpdates: 1, shards: 1, openEnrollment: true, scheduling: 'uniform',
      hyper: { localEpochs: 1, batchSize: 8 },
      evaluation: { every: 1, fraction: 1, holdout: HOLDOUT },
    });
    expect(spec.dataset).toBe('own');
    const task = await server.app.store.createTask(spec);
    await server.app.coordinator.start(task.id);
    return task.id;
  }

  async function contribute(taskId: number): Promise<Page> {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${server.url}/contribute/?task=${taskId}`);
    await page.getByRole('button', { name: 'I agree — start contributing' }).click();
    return page;
  }

  /** Picks files as the person would: once the picker for the task's kind of data shows. */
  async function pick(page: Page, label: string, path: string): Promise<void> {
    const input = page.getByLabel(label);
    await input.waitFor({ timeout: 60_000 });
    await input.setInputFiles(path);
  }

  /** Trains on the picked data; the page reports the upload and the server records the round with this browser's samples. */
  async function trainsOn(page: Page, taskId: number, valid: number, noun: string): Promise<void> {
    expect(await page.locator('#status').textContent()).toBe('Waiting for your data');
    await page.getByRole('button', { name: 'Train on my data' }).click();
    const trained = valid - Math.floor(valid * HOLDOUT);
    await expect.poll(() => page.locator('#data').textContent(), { timeout: 30_000 }).toBe(`${valid} ${noun}`);
    await expect.poll(() => page.locator('#local').textContent(), { timeout: 90_000 }).toMatch(new RegExp(`^Round 1: local .*on ${trained} ${noun} in .*; sent \\d+ KiB\\.$`));
    await expect.poll(async () => (await server.app.store.listRounds(taskId))[0], { timeout: 60_000 }).toMatchObject({ participants: 1, samples: trained });
  }

  it('trains on a CSV file, leaving out and naming the row that does not fit', { timeout: 180_000 }, async () => {
    const schema: TabularSchema = {
      kind: 'tabular',
      columns: [
        { name: 'length', type: 'numeric', min: 0, max: 10 },
        { name: 'colour', type: 'categorical', categories: ['red', 'blue'] },
        { name: 'kind', type: 'categorical', categories: ['small', 'large'] },
      ],
      label: 'kind',
    };
    const rows = Array.from({ length: 36 }, (_, i) => `${(i * 0.27).toFixed(2)},${i % 2 ? 'red' : 'blue'},${i < 18 ? 'small' : 'large'}`);
    rows.splice(16, 0, 'n/a,red,small'); // the 17th row
    const csv = join(files, 'measurements.csv');
    writeFileSync(csv, `length,colour,kind\n${rows.join('\n')}\n\n`);
    const taskId = await ownTask('own table', schema, { kind: 'mlp', hidden: [8] });

    const page = await contribute(taskId);
    await pick(page, 'CSV file (a header row, then one sample a row)', csv);
    await expect.poll(() => page.locator('#own-count').textContent(), { timeout: 30_000 }).toBe('36 valid samples of 37 rows; 1 left out.');
    expect(await page.locator('#own-problems li').allTextContents()).toEqual(['row 17, column "length": "n/a" is not a number']);
    expect(await page.locator('#own-preview tbody tr').count()).toBe(5);
    expect(await page.locator('#own-preview thead th').allTextContents()).toEqual(['Row', 'length', 'colour', 'kind']);
    await trainsOn(page, taskId, 36, 'rows');
    await page.screenshot({ path: join(ARTIFACTS, 'contribute-own-table.png'), fullPage: true });
    await page.context().close();
  });

  it('trains on a text file, counting the samples as the edge client does', { timeout: 180_000 }, async () => {
    const schema: TextSchema = { kind: 'text', tokenizer: 'char', vocabulary: 'abcdefghijklmnopqrstuvwxyz .,\n', sequenceLength: 8, stride: 4 };
    const sentences = ['the river runs to the sea', 'a small stream joins it', 'Rain falls on the hills', 'the water finds its way down'];
    const text = Array.from({ length: 24 }, (_, i) => `${sentences[i % sentences.length]}.`).join('\n');
    const file = join(files, 'notes.txt');
    writeFileSync(file, text);
    const expected = (await loadLocalData(file, schema)).n;
    const taskId = await ownTask('own text', schema, { kind: 'mlp', hidden: [16] });

    const page = await contribute(taskId);
    await pick(page, 'Text file (UTF-8)', file);
    await expect.poll(() => page.locator('#own-count').textContent(), { timeout: 30_000 })
      .toBe(`${expected} valid samples (windows of 8 characters) from ${text.length} characters, 6 characters outside the vocabulary.`);
    expect(await page.locator('#own-problems li').count()).toBe(0);
    expect(await page.locator('#own-preview pre').textContent()).toBe(text.slice(0, 400));
    await trainsOn(page, taskId, expected, 'text windows');
    await page.context().close();
  });

  it('trains on a folder of PNG images in per-label subfolders, leaving out what names no label or cannot be decoded', { timeout: 180_000 }, async () => {
    const schema: ImageSchema = { kind: 'image', height: 8, width: 8, channels: 1, labels: ['dark', 'light'] };
    const folder = join(files, 'photos');
    const grey = (level: number) => {
      const png = new PNG({ width: 8, height: 8 });
      for (let p = 0; p < 64; p++) png.data.set([level + (p % 7), level + (p % 5), level + (p % 3), 255], p * 4);
      return PNG.sync.write(png);
    };
    for (const [label, base] of [['dark', 20], ['light', 220]] as const) {
      mkdirSync(join(folder, label), { recursive: true });
      for (let i = 0; i < 6; i++) writeFileSync(join(folder, label, `${label}-${i}.png`), grey(base + i));
    }
    writeFileSync(join(folder, 'light', 'broken.png'), 'not a png');
    writeFileSync(join(folder, 'light', 'notes.txt'), 'not an image, and not read');
    mkdirSync(join(folder, '2'));
    writeFileSync(join(folder, '2', 'stray.png'), grey(128));
    const taskId = await ownTask('own images', schema, { kind: 'mlp', hidden: [8] });

    const page = await contribute(taskId);
    await pick(page, 'Image folder (one subfolder of PNG or JPEG images per label)', folder);
    await expect.poll(() => page.locator('#own-count').textContent(), { timeout: 30_000 }).toBe('12 valid samples of 14 images; 2 left out.');
    expect(await page.locator('#own-problems li').allTextContents()).toEqual([
      'folder 2: label 2 is not one of dark, light (or 0–1): its 1 image(s) left out',
      'light/broken.png cannot be decoded',
    ]);
    expect(await page.locator('#own-preview figcaption').allTextContents()).toEqual(['dark', 'dark', 'dark', 'dark', 'light', 'light', 'light', 'light']);
    await trainsOn(page, taskId, 12, 'images');
    await page.screenshot({ path: join(ARTIFACTS, 'contribute-own-images.png'), fullPage: true });
    await page.context().close();
  });

  it('starts a task with demo data on its demo shard, and switches to the person\'s own file in the same session', { timeout: 180_000 }, async () => {
    // Created, not started: the page joins and sets up, and no round can select it before the switch.
    const task = await server.app.store.createTask(withTaskDefaults({
      name: 'penguins, then my own', dataset: 'penguins', rounds: 1, clientsPerRound: 1, minUpdates: 1, openEnrollment: true, scheduling: 'uniform',
      evaluation: { every: 1, fraction: 1, holdout: HOLDOUT },
    }));
    const species = ['Adelie', 'Chinstrap', 'Gentoo'];
    const rows = Array.from({ length: 30 }, (_, i) => `${38 + (i % 3) * 5},${17 + (i % 3)},${190 + (i % 3) * 12},${3600 + (i % 3) * 900},${i % 2 ? 'MALE' : 'FEMALE'},${species[i % 3]}`);
    const csv = join(files, 'field-station.csv');
    writeFileSync(csv, `Beak Length (mm),Beak Depth (mm),Flipper Length (mm),Body Mass (g),Sex,Species\n${rows.join('\n')}\n`);

    const page = await contribute(task.id);
    await expect.poll(() => page.locator('#data-detail').textContent(), { timeout: 60_000 }).toMatch(/^demo shard \d+ of \d+, kept in this browser$/);
    await pick(page, 'CSV file (a header row, then one sample a row)', csv);
    await expect.poll(() => page.locator('#own-count').textContent(), { timeout: 30_000 }).toBe('30 valid samples of 30 rows.');
    await page.getByRole('button', { name: 'Train on my data' }).click();
    await expect.poll(() => page.locator('#data').textContent(), { timeout: 60_000 }).toBe('30 rows');
    await expect.poll(() => page.locator('#status').textContent(), { timeout: 60_000 }).toBe('Back in the task');

    await server.app.coordinator.start(task.id);
    const trained = 30 - Math.floor(30 * HOLDOUT);
    await expect.poll(async () => (await server.app.store.listRounds(task.id))[0], { timeout: 90_000 }).toMatchObject({ participants: 1, samples: trained });
    await page.context().close();
  });
});
