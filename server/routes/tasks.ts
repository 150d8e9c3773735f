import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { TributaryError } from '../../shared/errors.ts';
import { PrivacyStatus, TaskRecord, TaskSpecInput, withTaskDefaults } from '../../shared/protocol/task.ts';
import type { Coordinator } from '../rounds/coordinator.ts';
import { actorOf } from '../auth/access.ts';
import type { AuditLog } from '../auth/model.ts';
import { requireTask, type Store } from '../store/store.ts';
import { ErrorReply } from './errors.ts';
import { checkStrategySettings } from '../strategies/check.ts';
import { PrivacyBudget } from '../privacy/budget.ts';
import { parameterCount } from '../../shared/ml/models.ts';

export interface TaskRoutesOptions {
  store: Store;
  coordinator: Coordinator;
  audit: AuditLog;
}

const TaskParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });

export const taskRoutes: FastifyPluginAsync<TaskRoutesOptions> = async (app, { store, coordinator, audit }) => {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const getTask = (id: number) => requireTask(store, id);

  api.get('/tasks', {
    config: { access: 'viewer' },
    schema: { summary: 'List tasks', tags: ['tasks'], response: { 200: Type.Array(TaskRecord) } },
  }, () => store.listTasks());

  api.post('/tasks', {
    config: { access: 'operator' },
    schema: {
      summary: 'Create a task; omitted fields take their defaults',
      tags: ['tasks'],
      body: TaskSpecInput,
      response: { 201: TaskRecord, 400: ErrorReply },
      description: 'Refused with AGGREGATION_INVALID or PRIVACY_INVALID, naming the reason, when the aggregation rule or the privacy settings cannot hold (docs/errors.md).',
    },
  }, async (request, reply) => {
    const spec = withTaskDefaults(request.body);
    if (spec.minUpdates > spec.clientsPerRound) {
      throw new TributaryError('BAD_REQUEST', 'minUpdates cannot exceed clientsPerRound');
    }
    checkStrategySettings(spec);
    const task = await store.createTask(spec);
    await audit.record({ ...actorOf(request), action: 'task.create', target: `task ${task.id}`, detail: { name: spec.name, secure: spec.secure, mode: spec.mode, rule: spec.aggregation.rule, privacy: spec.privacy.mode } });
    reply.code(201);
    return task;
  });

  api.get('/tasks/:id', {
    config: { access: 'viewer' },
    schema: { summary: 'One task', tags: ['tasks'], params: TaskParams, response: { 200: TaskRecord, 404: ErrorReply } },
  }, (request) => getTask(request.params.id));

  api.get('/tasks/:id/privacy', {
    config: { access: 'viewer' },
    schema: {
      summary: "A differentially private task's budget: target (ε, δ), ε spent by its completed rounds, rounds left, noise, sampling rate and the guarantee in words",
      tags: ['tasks'],
      params: TaskParams,
      response: { 200: PrivacyStatus, 404: ErrorReply },
    },
  }, async (request) => {
    const task = await getTask(request.params.id);
    const budget = PrivacyBudget.of(task.spec, parameterCount(task.spec.model));
    if (!budget) throw new TributaryError('NOT_FOUND', `task ${task.id} is not differentially private`);
    return budget.status(task.completedRounds);
  });

  await app.register(lifecycleRoutes, { coordinator, audit });
};

/** What each lifecycle route does to a task, and what its audit entry says. */
const LIFECYCLE: Array<{ action: 'start' | 'pause' | 'resume' | 'stop'; summary: string; run: (c: Coordinator, id: number) => Promise<TaskRecord>; detail: (t: TaskRecord) => Record<string, unknown> }> = [
  { action: 'start', summary: 'Start (or resume) a task', run: (c, id) => c.start(id), detail: (t) => ({ fromRound: t.completedRounds + 1 }) },
  { action: 'pause', summary: 'Pause a running task (its current round is dropped; resume carries on from the last completed one)', run: (c, id) => c.pause(id), detail: (t) => ({ completedRounds: t.completedRounds }) },
  { action: 'resume', summary: 'Resume a paused task from its last completed round', run: (c, id) => c.start(id), detail: (t) => ({ fromRound: t.completedRounds + 1 }) },
  { action: 'stop', summary: 'Stop a running or paused task for good (its current round is dropped)', run: (c, id) => c.stop(id), detail: (t) => ({ completedRounds: t.completedRounds }) },
];

/** Start, pause, resume and stop: operators only, each audited. */
const lifecycleRoutes: FastifyPluginAsync<{ coordinator: Coordinator; audit: AuditLog }> = async (app, { coordinator, audit }) => {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  for (const { action, summary, run, detail } of LIFECYCLE) {
    api.post(`/tasks/:id/${action}`, {
      config: { access: 'operator' },
      schema: { summary, tags: ['tasks'], params: TaskParams, response: { 200: TaskRecord, 404: ErrorReply, 409: ErrorReply } },
    }, async (request) => {
      const task = await run(coordinator, request.params.id);
      await audit.record({ ...actorOf(request), action: `task.${action}`, target: `task ${task.id}`, detail: detail(task) });
      return task;
    });
  }
};
