import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { TributaryError } from '../../shared/errors.ts';
import type { Checkpoints } from '../rounds/checkpoints.ts';
import { requireTask, type Store } from '../store/store.ts';
import { ModelCard } from '../../shared/protocol/model-card.ts';
import type { RoundRecord, TaskRecord } from '../../shared/protocol/task.ts';
import { parameterCount } from '../../shared/ml/models.ts';
import { PrivacyBudget } from '../privacy/budget.ts';

export interface ModelRoutesOptions {
  store: Store;
  checkpoints: Checkpoints;
}

const Params = Type.Object({
  id: Type.Integer({ minimum: 1 }),
  file: Type.Union([Type.Literal('model.json'), Type.Literal('weights.bin')]),
});
const Query = Type.Object({ round: Type.Optional(Type.Integer({ minimum: 0 })) });

async function modelCard(task: TaskRecord, rounds: readonly RoundRecord[]): Promise<ModelCard> {
  const { spec, id } = task;
  const parameters = await parameterCount(spec.model, spec.data);
  return {
    task: { id, name: spec.name },
    model: { kind: spec.model.kind, parameters, format: 'tfjs-layers', url: `/api/tasks/${id}/model/model.json` },
    data: { schema: spec.data, dataset: spec.dataset, partition: spec.partition, shards: spec.shards },
    evaluation: spec.evaluation,
    rounds: { planned: spec.rounds, completed: task.completedRounds },
    metrics: rounds.map((r) => ({ round: r.round, server: r.metrics, federated: r.federated, participants: r.participants, epsilon: r.epsilon })),
    aggregation: { rule: spec.aggregation, optimizer: spec.strategy, secure: spec.secure, bits: spec.bits },
    privacy: PrivacyBudget.of(spec, parameters)?.status(task.completedRounds) ?? null,
    uploadBytes: rounds.reduce((a, r) => a + r.uploadBytes, 0),
  };
}

/**
 * The global model as a TF.js layers model: `tf.loadLayersModel('<server>/api/tasks/1/model/model.json')`
 * loads the latest round; `?round=N` picks an earlier checkpoint.
 */
export const modelRoutes: FastifyPluginAsync<ModelRoutesOptions> = async (app, { store, checkpoints }) => {
  app.withTypeProvider<TypeBoxTypeProvider>().get('/tasks/:id/model/card', {
    config: { access: 'viewer' },
    schema: {
      summary: "The model card: task, model, data, metrics per round, aggregation, the privacy guarantee (or null) and bytes sent",
      tags: ['model'],
      params: Type.Object({ id: Type.Integer({ minimum: 1 }) }),
      response: { 200: ModelCard },
    },
  }, async (request) => {
    const task = await requireTask(store, request.params.id);
    return modelCard(task, await store.listRounds(task.id));
  });

  app.withTypeProvider<TypeBoxTypeProvider>().get('/tasks/:id/model/:file', {
    config: { access: 'viewer' },
    schema: {
      summary: 'Download the global model (TF.js format) of the latest or a given round',
      tags: ['model'],
      params: Params,
      querystring: Query,
    },
  }, async (request, reply) => {
    const { id, file } = request.params;
    const task = await requireTask(store, id);
    const round = request.query.round ?? task.completedRounds;
    if (round > task.completedRounds) throw new TributaryError('ROUND_NOT_FOUND', `round ${round}`);
    const body = await checkpoints.readFile(id, round, file);
    if (file === 'model.json') {
      // Pin the weights of "the latest" to the same round as the topology, even if a round completes
      // in between. A request that named its round needs no pin: tf.loadLayersModel appends the
      // model.json URL's query to each weight path itself (pinning too gave "?round=N?round=N").
      const json = JSON.parse(new TextDecoder().decode(body)) as { weightsManifest: { paths: string[] }[] };
      if (request.query.round === undefined) for (const group of json.weightsManifest) group.paths = group.paths.map((p) => `${p}?round=${round}`);
      return reply.type('application/json').header('x-tributary-round', round).send(json);
    }
    return reply.type('application/octet-stream').header('x-tributary-round', round).send(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  });
};
