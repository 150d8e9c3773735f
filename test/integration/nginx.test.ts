import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inProcessClient, startHarness, type Harness } from '../support/harness.ts';
import { startNginx, type TestNginx } from '../support/nginx.ts';
import { freePort } from '../support/redis.ts';

/**
 * The nginx config the project ships (deploy/nginx.conf), run by a real nginx in front of
 * the server: socket.io over WebSocket through the upgrade, chunked uploads and model
 * downloads through the proxy, and an upstream that is down skipped for the next.
 */

describe('behind nginx (deploy/nginx.conf)', () => {
  let h: Harness;
  let nginx: TestNginx;

  beforeAll(async () => {
    h = await startHarness({ trustProxy: ['loopback'] });
    // The first upstream is a process that is down: nginx must move on to the live one.
    nginx = await startNginx([`127.0.0.1:${await freePort()}`, h.url.replace('http://', '')]);
  }, 60_000);
  afterAll(async () => {
    await nginx?.stop();
    await h?.close();
  });

  it('serves the API and /readyz through the proxy', async () => {
    for (let i = 0; i < 4; i++) expect((await fetch(`${nginx.url}/readyz`)).status).toBe(200);
    const tasks = await fetch(`${nginx.url}/api/tasks`, { headers: { authorization: `Bearer ${h.adminToken}` } });
    expect(tasks.status).toBe(200);
  });

  it('runs a round whose clients connect through nginx over WebSocket', { timeout: 180_000 }, async () => {
    const task = await h.createTask({ name: 'via nginx', shards: 2, clientsPerRound: 2, minUpdates: 2, rounds: 1, trainLimit: 2_000, testLimit: 500, seed: 5 });
    const clients = [0, 1].map((shard) => inProcessClient(h, task.id, shard, { server: nginx.url, seed: 20 + shard }));
    await Promise.all(clients.map((c) => c.start()));
    await h.app.coordinator.start(task.id);
    await h.waitForStatus(task.id, 'completed', 150_000);
    for (const c of clients) c.stop();
    const [round] = await h.app.store.listRounds(task.id);
    expect(round).toMatchObject({ round: 1, participants: 2, rejected: 0 });
    // The upload bytes the server counted are the update's (~1 byte a parameter), framing included: nothing was re-encoded on the way.
    expect(round!.uploadBytesPerParam).toBeGreaterThan(1);
    expect(round!.uploadBytesPerParam).toBeLessThan(1.05);
    const weights = await fetch(`${nginx.url}/api/tasks/${task.id}/model/weights.bin?round=1`, { headers: { authorization: `Bearer ${h.adminToken}` } });
    expect(weights.status).toBe(200);
    expect((await weights.arrayBuffer()).byteLength).toBe(199_210 * 4);
  });
});
