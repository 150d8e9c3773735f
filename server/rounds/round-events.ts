import type { Logger } from 'pino';
import type { AuditLog } from '../auth/model.ts';
import type { RoundEvents } from './runner.ts';

/** One RoundEvents that tells each sink, in the order given, the events it listens to. */
export function fanOutRoundEvents(...sinks: Array<Partial<RoundEvents>>): RoundEvents {
  const each = (tell: (sink: Partial<RoundEvents>) => void) => {
    for (const sink of sinks) tell(sink);
  };
  return {
    roundStarted: (event) => each((sink) => sink.roundStarted?.(event)),
    uploadProgress: (event) => each((sink) => sink.uploadProgress?.(event)),
    roundAborted: (event) => each((sink) => sink.roundAborted?.(event)),
    roundComplete: (record, end, detail) => each((sink) => sink.roundComplete?.(record, end, detail)),
    taskStatus: (event) => each((sink) => sink.taskStatus?.(event)),
  };
}

/** Round starts, completions and aborts, in the audit log as the `system` actor's. */
export function auditRoundEvents(audit: AuditLog, log: Logger): Partial<RoundEvents> {
  const note = (action: string, taskId: number, detail: Record<string, unknown>) => {
    // The round loop does not wait for the log; a failed write is logged, not left an unhandled rejection.
    audit.record({ actor: 'system', action, target: `task ${taskId}`, detail, ip: '' }).catch((err: unknown) => log.error({ err, action }, 'audit record failed'));
  };
  return {
    roundStarted: (event) => note('round.start', event.taskId, { round: event.round, participants: event.participants.length }),
    roundComplete: (record) => note('round.complete', record.taskId, { round: record.round, accuracy: record.accuracy }),
    roundAborted: (event) => note('round.abort', event.taskId, { round: event.round, code: event.error.code }),
  };
}
