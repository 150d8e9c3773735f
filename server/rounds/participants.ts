import type { ParticipantRecord, TaskSpec } from '../../shared/protocol/task.ts';
import type { CollectedRound } from './round-collection.ts';
import type { RoundPlan, Scheduler } from './scheduler.ts';

/**
 * What a round showed of each participant: delivered in time, late (still at it when the
 * round closed), dropped or rejected. The scheduler's speed estimates learn from it, the
 * dashboard shows each client's latest round, and the round's record keeps it.
 */
export function accountParticipants(
  plan: RoundPlan,
  spec: TaskSpec,
  collected: CollectedRound<unknown>,
  timing: { startedAt: number; now: number },
  scheduler: Scheduler,
): ParticipantRecord[] {
  const accepted = new Map(collected.accepted.map((u) => [u.clientId, u]));
  const late = new Set(collected.late);
  const dropped = new Set(collected.dropped);
  return plan.participants.map((c) => {
    const budget = plan.budgets.get(c.id) ?? null;
    const work = budget ?? c.samples * spec.hyper.localEpochs;
    const update = accepted.get(c.id);
    const elapsedMs = update ? update.receivedAt - timing.startedAt : null;
    const speed = scheduler.speedOf(c);
    if (elapsedMs !== null) scheduler.observe(c, work, elapsedMs, true);
    else if (late.has(c.id)) scheduler.observe(c, work, timing.now - timing.startedAt, false);
    const outcome = update ? 'delivered' : late.has(c.id) ? 'late' : dropped.has(c.id) ? 'dropped' : 'rejected';
    c.lastRound = { round: plan.round, budget, elapsedMs, deadlineMs: spec.roundDeadlineMs, outcome };
    return { clientId: c.id, kind: c.kind, backend: c.backend, speed, budget, samples: update?.samples ?? 0, elapsedMs, outcome };
  });
}
