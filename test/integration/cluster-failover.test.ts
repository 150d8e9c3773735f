import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBenchCluster, type BenchCluster } from '../../bench/local-cluster.ts';
import { api, enrollmentToken } from '../../cli/processes.ts';
import type { FederatedClient } from '../../client/federated-client.ts';
import { leaseKey } from '../../server/cluster/leader-lease.ts';
import type { RoundRecord, TaskRecord } from '../../shared/protocol/task.ts';
import { inProcessClient } from '../support/harness.ts';

/**
 * Failover as it happens in production: three `tributary serve` processes on real Redis
 * and PostgreSQL behind real nginx (the shipped deploy/nginx.conf), clients connected
 * through nginx only. The leader is SIGKILLed mid-task: its clients reconnect through
 * nginx to the survivors, another process takes the lease and the task completes, every
 * round recorded once and in order, none that was recorded before the kill lost.
 */
describe('cluster failover through nginx', () => {
  let cluster: BenchCluster;
  let dir: string;
  const clients: FederatedClient[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tributary-failover-'));
    cluster = await startBenchCluster({ processes: 3, dir });
  }, 180_000);
  afterAll(async () => {
    for (const c of clients) c.stop();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const get = <T>(path: string) => api<T>(`${cluster.url}${path}`, 'GET', undefined, cluster.operator);
  const waitFor = async (what: string, condition: () => Promise<boolean>, timeoutMs = 240_000) => {
    const until = Date.now() + timeoutMs;
    while (!(await condition().catch(() => false))) {
      if (Date.now() > until) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  };

  it('SIGKILL of the leader mid-task: another process takes the task over; each round recorded once, in order', { timeout: 400_000 }, async () => {
    const task = await api<TaskRecord>(`${cluster.url}/api/tasks`, 'POST', {
      name: 'failover', shards: 6, clientsPerRound: 6, minUpdates: 3, rounds: 4, trainLimit: 600, testLimit: 300, seed: 8, roundDeadlineMs: 60_000,
    }, cluster.operator);
    const token = await enrollmentToken(cluster.url, task.id, cluster.operator, 'failover clients');
    for (let shard = 0; shard < 6; shard++) clients.push(inProcessClient({ url: cluster.url, token: () => token }, task.id, shard, { seed: 50 + shard }));
    await Promise.all(clients.map((c) => c.start()));
    await api(`${cluster.url}/api/tasks/${task.id}/start`, 'POST', undefined, cluster.operator);
    await waitFor('round 1', async () => (await get<TaskRecord>(`/api/tasks/${task.id}`)).completedRounds >= 1);

    // The lease's value is "<token> <host>:<pid>:<nonce>": the holder's pid names the process to kill.
    const redis = createClient({ url: cluster.redis.url });
    await redis.connect();
    const lease = await redis.get(leaseKey(task.id));
    await redis.quit();
    const pid = Number(lease?.split(' ')[1]?.split(':')[1]);
    const leader = cluster.servers.find((s) => s.child()?.pid === pid);
    expect(leader, `lease ${lease}`).toBeDefined();
    const before = await get<RoundRecord[]>(`/api/tasks/${task.id}/rounds`);
    expect(before.length).toBeLessThan(4); // the task is still running: the kill lands mid-task
    await leader!.kill('SIGKILL');

    await waitFor('the task to complete', async () => (await get<TaskRecord>(`/api/tasks/${task.id}`)).status === 'completed');
    const rounds = await get<RoundRecord[]>(`/api/tasks/${task.id}/rounds`);
    expect(rounds.map((r) => r.round)).toEqual([1, 2, 3, 4]);
    // Nothing recorded before the kill was lost or rewritten.
    for (const r of before) expect(rounds[r.round - 1]).toMatchObject({ round: r.round, participants: r.participants, accuracy: r.accuracy });
    expect(rounds.every((r) => r.participants >= 3)).toBe(true);
  });
});
