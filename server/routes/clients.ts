import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { TributaryError } from '../../shared/errors.ts';
import type { ClientRegistry } from '../gateway/clients.ts';
import type { DemoShards } from '../data/demo-shards.ts';
import { requireTask, type Store } from '../store/store.ts';
import { ErrorReply } from './errors.ts';

export interface ClientRoutesOptions {
  store: Store;
  clients: ClientRegistry;
  shards: DemoShards;
}

const TaskParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });
const ClientView = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  backend: Type.String(),
  samples: Type.Integer(),
  throughput: Type.Number(),
  state: Type.String(),
  shard: Type.Union([Type.Integer(), Type.Null()]),
  adapter: Type.Optional(Type.String()),
  battery: Type.Optional(Type.Object({ level: Type.Number(), charging: Type.Boolean() })),
  roundsDelivered: Type.Integer(),
});

/** The clients joined to a task (the dashboard's table), and the demo data shards browsers train on. */
export const clientRoutes: FastifyPluginAsync<ClientRoutesOptions> = async (app, { store, clients, shards }) => {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const getTask = (id: number) => requireTask(store, id);

  api.get('/tasks/:id/clients', {
    config: { access: 'viewer' },
    schema: { summary: 'Clients joined to a task: kind, backend, measured speed, state', tags: ['clients'], params: TaskParams, response: { 200: Type.Array(ClientView), 404: ErrorReply } },
  }, async (request) => {
    await getTask(request.params.id);
    return clients.ofTask(request.params.id).map((c) => c.view());
  });

  api.get('/tasks/:id/demo-shard/:shard', {
    // A public built-in data set, cut the way the task's devices cut it: what a contribute page trains on.
    config: { access: 'public', rateLimit: { max: 30, timeWindow: 60_000 } },
    schema: {
      summary: "A demo data shard of the task's partition (binary: shared/demo-shard.ts), standing in for a browser's own data",
      tags: ['clients'],
      params: Type.Object({ id: Type.Integer({ minimum: 1 }), shard: Type.Integer({ minimum: 0, maximum: 10_000 }) }),
    },
  }, async (request, reply) => {
    const task = await getTask(request.params.id);
    if (request.params.shard >= task.spec.shards) throw new TributaryError('BAD_REQUEST', `the task has ${task.spec.shards} shards`);
    const bytes = await shards.shard(task.spec, request.params.shard);
    return reply.type('application/octet-stream').header('cache-control', 'public, max-age=86400').send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });
};
