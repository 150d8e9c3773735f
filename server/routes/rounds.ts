import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ParticipantRecord, RoundRecord } from '../../shared/protocol/task.ts';
import { requireTask, type Store } from '../store/store.ts';
import { ErrorReply } from './errors.ts';

const TaskParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });

/** A task's completed rounds: their metrics (JSON and CSV) and each round's participants. */
export const roundRoutes: FastifyPluginAsync<{ store: Store }> = async (app, { store }) => {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const getTask = (id: number) => requireTask(store, id);

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
