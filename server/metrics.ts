import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ClientRegistry } from './gateway/clients.ts';
import type { RoundEvents } from './rounds/runner.ts';

/**
 * Prometheus metrics (prom-client), in a registry of the app's own so several servers in
 * one process (tests) do not share counters. Round metrics come in as round events;
 * connected clients are counted when scraped.
 */
export function createMetrics(clients: ClientRegistry): { registry: Registry; events: Pick<RoundEvents, 'roundComplete' | 'roundAborted'> } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const rounds = new Counter({ name: 'tributary_rounds_total', help: 'Rounds finished, by task and outcome (completed or aborted)', labelNames: ['task', 'outcome'], registers });
  const participants = new Counter({ name: 'tributary_participants_total', help: 'Updates aggregated', labelNames: ['task'], registers });
  const dropouts = new Counter({ name: 'tributary_dropouts_total', help: 'Selected participants that left a round before their update counted', labelNames: ['task'], registers });
  const late = new Counter({ name: 'tributary_late_updates_total', help: 'Participants past a sync deadline (discarded), or async updates trained on an older model (weighted by staleness)', labelNames: ['task'], registers });
  const rejected = new Counter({ name: 'tributary_rejected_updates_total', help: 'Updates rejected as malformed', labelNames: ['task'], registers });
  const uploadBytes = new Counter({ name: 'tributary_upload_bytes_total', help: 'Bytes read from participants during rounds, framing included', labelNames: ['task'], registers });
  const roundSeconds = new Histogram({
    name: 'tributary_round_duration_seconds',
    help: 'Wall time of completed rounds',
    labelNames: ['task'],
    buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
    registers,
  });
  const aggregationSeconds = new Histogram({
    name: 'tributary_aggregation_duration_seconds',
    help: 'Time to turn a round\'s updates into the new global model (unmasking and server optimizer included)',
    labelNames: ['task'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 20],
    registers,
  });
  const accuracy = new Gauge({ name: 'tributary_model_accuracy', help: 'Test accuracy of the latest global model', labelNames: ['task'], registers });
  new Gauge({
    name: 'tributary_connected_clients',
    help: 'Clients connected to a task, by kind',
    labelNames: ['kind'],
    registers,
    collect() {
      this.reset();
      for (const kind of ['browser', 'edge', 'gpu'] as const) this.set({ kind }, clients.all().filter((c) => c.kind === kind && c.connected).length);
    },
  });
  return {
    registry,
    events: {
      roundComplete(record, _end, timing) {
        const task = String(record.taskId);
        rounds.inc({ task, outcome: 'completed' });
        participants.inc({ task }, record.participants);
        dropouts.inc({ task }, record.dropped);
        late.inc({ task }, record.late);
        rejected.inc({ task }, record.rejected);
        uploadBytes.inc({ task }, record.uploadBytes);
        roundSeconds.observe({ task }, record.durationMs / 1000);
        aggregationSeconds.observe({ task }, timing.aggregationMs / 1000);
        if (record.accuracy !== null) accuracy.set({ task }, record.accuracy);
      },
      roundAborted(event) {
        rounds.inc({ task: String(event.taskId), outcome: 'aborted' });
      },
    },
  };
}
