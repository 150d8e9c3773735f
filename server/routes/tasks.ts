import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { TributaryError } from '../../shared/errors.ts';
import { ParticipantRecord, RoundRecord, TaskRecord, TaskSpecInput, withTaskDefaults } from '../../shared/protocol/task.ts';
import type { Coordinator } from '../rounds/coordinator.ts';
import { actorOf } from '../auth/access.ts';
import type { AuditLog } from '../auth/model.ts';
import { requireTask, type Store } from '../store/store.ts';
import { ErrorReply } from './errors.ts';

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
    },
  }, async (request, reply) => {
    const spec = withTaskDefaults(request.body);
    if (spec.minUpdates > spec.clientsPerRound) {
      throw new TributaryError('BAD_REQUEST', 'minUpdates cannot exceed clientsPerRound');
    }
    const task = await store.createTask(spec);
    await audit.record({ ...actorOf(request), action: 'task.create', target: `task ${task.id}`, detail: { name: spec.name, secure: spec.secure, mode: spec.mode } });
    reply.code(201);
    return task;
  });

  api.get('/tasks/:id', {
    config: { access: 'viewer' },
    schema: { summary: 'One task', tags: ['tasks'], params: TaskParams, response: { 200: TaskRecord, 404: ErrorReply } },
  }, (request) => getTask(request.params.id));

  api.post('/tasks/:id/start', {
    config: { access: 'operator' },
    schema: { summary: 'Start (or resume) a task', tags: ['tasks'], params: TaskParams, response: { 200: TaskRecord, 404: ErrorReply, 409: ErrorReply } },
  }, async (request) => {
    const task = await coordinator.start(request.params.id);
    await audit.record({ ...actorOf(request), action: 'task.start', target: `task ${task.id}`, detail: { fromRound: task.completedRounds + 1 } });
    return task;
  });

  api.post('/tasks/:id/pause', {
    config: { access: 'operator' },
    schema: { summary: 'Pause a running task (its current round is dropped; resume carries on from the last completed one)', tags: ['tasks'], params: TaskParams, response: { 200: TaskRecord, 404: ErrorReply, 409: ErrorReply } },
  }, async (request) => {
    const task = await coordinator.pause(request.params.id);
    await audit.record({ ...actorOf(request), action: 'task.pause', target: `task ${task.id}`, detail: { completedRounds: task.completedRounds } });
    return task;
  });

  api.post('/tasks/:id/resume', {
    config: { access: 'operator' },
    schema: { summary: 'Resume a paused task from its last completed round', tags: ['tasks'], params: TaskParams, response: { 200: TaskRecord, 404: ErrorReply, 409: ErrorReply } },
  }, async (request) => {
    const task = await coordinator.start(request.params.id);
    await audit.record({ ...actorOf(request), action: 'task.resume', target: `task ${task.id}`, detail: { fromRound: task.completedRounds + 1 } });
    return task;
  });

  api.post('/tasks/:id/stop', {
    config: { access: 'operator' },
    schema: { summary: 'Stop a running or paused task for good (its current round is dropped)', tags: ['tasks'], params: TaskParams, response: { 200: TaskRecord, 404: ErrorReply, 409: ErrorReply } },
  }, async (request) => {
    const task = await coordinator.stop(request.params.id);
    await audit.record({ ...actorOf(request), action: 'task.stop', target: `task ${task.id}`, detail: { completedRounds: task.completedRounds } });
    return task;
  });

  api.get('/tasks/:id/rounds/:round/participants', {
    config: { access: 'viewer' },
    schema: {
      summary: "A round's participants: kind, backend, speed estimate, share of work, time to deliver, outcome",
      tags: ['rounds'],
      params: Type.Object({ id: Type.Integer({ minimum: 1 }), round: Type.Integer({ minimum: 1 }) }),
      response: { 200: Type.Array(ParticipantRecord), 404: ErrorReply },
    },
  }, async (request) => {
    await getTask(request.params.id);
    return store.listParticipants(request.params.id, request.params.round);
  });

  api.get('/tasks/:id/rounds.csv', {
    config: { access: 'viewer' },
    schema: { summary: 'Round metrics as CSV', tags: ['rounds'], params: TaskParams },
  }, async (request, reply) => {
    await getTask(request.params.id);
    const rounds = await store.listRounds(request.params.id);
    const columns = ['round', 'accuracy', 'loss', 'participants', 'dropped', 'late', 'rejected', 'samples', 'staleness', 'uploadBytes', 'uploadBytesPerParam', 'durationMs', 'finishedAt'] as const;
    const csv = [columns.join(','), ...rounds.map((r) => columns.map((c) => r[c]).join(','))].join('\n');
    return reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="task-${request.params.id}-rounds.csv"`)
      .send(`${csv}\n`);
  });

  api.get('/tasks/:id/rounds', {
    config: { access: 'viewer' },
    schema: { summary: 'Completed rounds with their metrics', tags: ['rounds'], params: TaskParams, response: { 200: Type.Array(RoundRecord), 404: ErrorReply } },
  }, async (request) => {
    await getTask(request.params.id);
    return store.listRounds(request.params.id);
  });
};
