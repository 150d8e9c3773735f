import { describe, expect, it } from 'vitest';
import { ClientRegistry, ClientSession } from '../../server/gateway/clients.ts';
import { Scheduler, timeToTrain } from '../../server/rounds/scheduler.ts';
import type { RoundStart } from '../../shared/protocol/events.ts';
import { TASK_DEFAULTS, withTaskDefaults, type TaskRecord, type TaskSpecInput } from '../../shared/protocol/task.ts';

let nextId = 0;
const task = (id: number, spec: TaskSpecInput = {}): TaskRecord => ({ id, spec: withTaskDefaults({ name: `t${id}`, ...spec }), status: 'running', completedRounds: 0, createdAt: '' });

/** A ready session with a link that goes nowhere (the scheduler reads sessions, never sends). */
function session(registry: ClientRegistry, taskId: number, options: { samples?: number; speed?: number; identity?: number; battery?: { level: number; charging: boolean } } = {}): ClientSession {
  const s = new ClientSession({
    id: `c${String(++nextId).padStart(3, '0')}`,
    taskId,
    kind: 'edge',
    identityKey: new Uint8Array(32).fill(options.identity ?? nextId),
    shard: null,
    resumeToken: new Uint8Array(32),
  });
  s.attach({ bytesRead: () => 0, sendRoundStart: async () => {}, drop: () => undefined });
  s.samples = options.samples ?? 1_000;
  s.capabilities = { throughput: options.speed ?? 1_000, ...(options.battery ? { battery: options.battery } : {}) };
  registry.add(s);
  return s;
}

describe('scheduler', () => {
  it('over-selects by 30 % when more clients are ready, and closes the round at clientsPerRound', () => {
    const registry = new ClientRegistry();
    const t = task(1, { clientsPerRound: 5 });
    for (let i = 0; i < 10; i++) session(registry, 1);
    const plan = new Scheduler(registry).plan(t, 1, registry.readyFor(1));
    expect(plan.participants).toHaveLength(7);
    expect(plan.enough).toBe(5);
  });

  it('moves work from the slow to the fast: the uniform total in the least time, alike devices keeping their share', () => {
    const registry = new ClientRegistry();
    const t = task(1, { clientsPerRound: 5, roundDeadlineMs: 120_000, hyper: { ...TASK_DEFAULTS.hyper, batchSize: 100 } });
    const alike = [1_000, 1_050, 950].map((speed) => session(registry, 1, { samples: 10_000, speed }));
    const slow = session(registry, 1, { samples: 10_000, speed: 250 });
    const fast = session(registry, 1, { samples: 10_000, speed: 1_750 });
    const plan = new Scheduler(registry).plan(t, 1, registry.readyFor(1));
    expect(plan.targetMs).toBe(10_000); // 50,000 sample visits at 5,000/s together
    for (const c of alike) expect(plan.budgets.has(c.id)).toBe(false);
    expect(plan.budgets.get(slow.id)).toBe(2_500); // a quarter of an epoch
    expect(plan.budgets.get(fast.id)).toBe(17_500); // what the slow one left
  });

  it('caps a fast device at twice its share, and never plans longer than uniform work would take', () => {
    const registry = new ClientRegistry();
    const quick = [2_000, 2_000].map((speed) => session(registry, 1, { samples: 1_000, speed }));
    const heavy = session(registry, 1, { samples: 4_000, speed: 500 }); // 8 s for its share
    const plan = new Scheduler(registry).plan(task(1, { clientsPerRound: 3, hyper: { ...TASK_DEFAULTS.hyper, batchSize: 100 } }), 1, registry.readyFor(1));
    expect(plan.targetMs).toBe(4_000); // the quick ones are capped after 1 s; the heavy one trains the rest
    expect(plan.budgets.get(heavy.id)).toBe(2_000);
    for (const c of quick) expect(plan.budgets.get(c.id)).toBe(2_000);
  });

  it('sizes work in whole batches, at least one', () => {
    const registry = new ClientRegistry();
    session(registry, 1, { samples: 6_400, speed: 6_400 });
    const slow = session(registry, 1, { samples: 6_400, speed: 40 });
    const plan = new Scheduler(registry).plan(task(1, { clientsPerRound: 2 }), 1, registry.readyFor(1));
    expect(plan.budgets.get(slow.id)).toBe(64); // 40/s × ~2 s is 80 visits: one batch of 64
  });

  it('times the least a federation needs for a total, walking the moments devices reach their caps', () => {
    expect(timeToTrain([{ speed: 1, cap: 10 }, { speed: 1, cap: 100 }], 40)).toBe(30);
    expect(timeToTrain([{ speed: 2, cap: 100 }], 50)).toBe(25);
    expect(timeToTrain([{ speed: 1, cap: 10 }], 11)).toBe(Number.POSITIVE_INFINITY);
  });

  it('gives uniform work (and no over-selection) when asked to', () => {
    const registry = new ClientRegistry();
    for (const speed of [100, 10_000, 1_000, 50]) session(registry, 1, { speed });
    const plan = new Scheduler(registry).plan(task(1, { clientsPerRound: 3, scheduling: 'uniform' }), 1, registry.readyFor(1));
    expect(plan.participants).toHaveLength(3);
    expect(plan.budgets.size).toBe(0);
  });

  it('leaves out devices low on battery, busy in another task, or wanted by a higher-priority task choosing now', () => {
    const registry = new ClientRegistry();
    const scheduler = new Scheduler(registry);
    const low = session(registry, 1, { battery: { level: 0.1, charging: false } });
    const charging = session(registry, 1, { battery: { level: 0.1, charging: true } });
    const shared = session(registry, 1, { identity: 200 });
    const busy = session(registry, 1, { identity: 201 });
    session(registry, 2, { identity: 200 }); // the same device, joined to task 2 as well
    const elsewhere = session(registry, 3, { identity: 201 });
    elsewhere.sendRoundStart({ round: 1 } as RoundStart); // training a round of task 3
    const low1 = task(1, { priority: 0 });
    const ids = () => scheduler.eligible(low1).map((c) => c.id);
    expect(ids()).toEqual([charging.id, shared.id]);
    expect(ids()).not.toContain(low.id);
    expect(ids()).not.toContain(busy.id);
    const high = scheduler.choose(task(2, { priority: 5 }));
    expect(ids()).toEqual([charging.id]);
    high.done();
    expect(ids()).toEqual([charging.id, shared.id]);
  });

  it('lowers the estimate of a participant that missed the deadline, and follows what devices report', () => {
    const registry = new ClientRegistry();
    const scheduler = new Scheduler(registry);
    const c = session(registry, 1, { speed: 10_000 });
    scheduler.observe(c, 2_000, 11_500, false); // 2,000 samples not done in 10 s of training
    expect(scheduler.speedOf(c)).toBe(100);
    scheduler.reported(c, 640);
    expect(scheduler.speedOf(c)).toBe(640);
    scheduler.observe(c, 640, 2_000, true); // a delivery that took 2 s, transfers included, says less than the report
    expect(scheduler.speedOf(c)).toBe(640);
    scheduler.observe(c, 640, 2_500, true); // no report since: the round's time counts
    expect(scheduler.speedOf(c)).toBe(0.5 * 640 + 0.5 * 640);
    scheduler.reported(c, 700);
    scheduler.observe(c, 6_400, 11_500, false); // late, even though it reported
    expect(scheduler.speedOf(c)).toBe(320);
  });
});
