import { LEGACY_PRESETS } from '../../../shared/data/builtin.ts';
import { withTaskDefaults, type ParticipantRecord, type RoundRecord, type TaskRecord, type TaskSpecInput, type TaskStatus } from '../../../shared/protocol/task.ts';

/** A `tasks` row, alike in SQLite and PostgreSQL. */
export interface TaskRow {
  id: number;
  spec: string;
  status: TaskStatus;
  completed_rounds: number;
  created_at: string;
}

/** A `rounds` row, alike in SQLite and PostgreSQL (JSON documents are TEXT in both). */
export interface RoundRow {
  task_id: number;
  round: number;
  participants: number;
  dropped: number;
  late: number;
  rejected: number;
  samples: number;
  staleness: number;
  accuracy: number;
  loss: number;
  upload_bytes: number;
  upload_bytes_per_param: number;
  duration_ms: number;
  finished_at: string;
  rule: string;
  discarded: string;
  epsilon: number | null;
  clip_norm: number | null;
  metrics: string | null;
  federated: string | null;
}

/** A `round_participants` row, as the stores read it back (task and round are the query's). */
export interface ParticipantRow {
  client_id: string;
  kind: string;
  backend: string;
  speed: number;
  budget: number | null;
  samples: number;
  elapsed_ms: number | null;
  outcome: ParticipantRecord['outcome'];
}

export function toTask(row: TaskRow): TaskRecord {
  return {
    id: row.id,
    // Specs stored by an older version (or copied from an older SQLite file) lack newer fields: those take their defaults.
    spec: withTaskDefaults(upgradeSpec(JSON.parse(row.spec) as Record<string, unknown>)),
    status: row.status,
    completedRounds: row.completed_rounds,
    createdAt: row.created_at,
  };
}

/** A spec stored before models were described by architecture names a preset: the same layers, the same weights. */
function upgradeSpec(stored: Record<string, unknown>): TaskSpecInput {
  const model = typeof stored.model === 'string' ? LEGACY_PRESETS[stored.model] : stored.model;
  return { ...stored, model } as TaskSpecInput;
}

export function toRound(row: RoundRow): RoundRecord {
  // Rows from before metrics were stored as JSON keep them NULL: accuracy and loss are their scores.
  const metrics = row.metrics === null ? { accuracy: row.accuracy, loss: row.loss } : (JSON.parse(row.metrics) as Record<string, number>);
  return {
    taskId: row.task_id,
    round: row.round,
    participants: row.participants,
    dropped: row.dropped,
    late: row.late,
    rejected: row.rejected,
    samples: row.samples,
    staleness: row.staleness,
    accuracy: metrics.accuracy ?? null,
    loss: metrics.loss ?? null,
    metrics,
    federated: row.federated === null ? null : (JSON.parse(row.federated) as RoundRecord['federated']),
    uploadBytes: row.upload_bytes,
    uploadBytesPerParam: row.upload_bytes_per_param,
    durationMs: row.duration_ms,
    finishedAt: row.finished_at,
    rule: row.rule,
    discarded: JSON.parse(row.discarded) as string[],
    epsilon: row.epsilon,
    clipNorm: row.clip_norm,
  };
}

export const toParticipant = (r: ParticipantRow): ParticipantRecord => ({
  clientId: r.client_id,
  kind: r.kind,
  backend: r.backend,
  speed: r.speed,
  budget: r.budget,
  samples: r.samples,
  elapsedMs: r.elapsed_ms,
  outcome: r.outcome,
});
