import type { FastifyError, FastifyPluginAsync } from 'fastify';
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
import { base64Length, MODEL_LIMITS } from '../../shared/protocol/model-upload.ts';
import { acceptModel } from '../models/accept-model.ts';
import type { Checkpoints } from '../rounds/checkpoints.ts';

export interface TaskRoutesOptions {
  store: Store;
  coordinator: Coordinator;
  audit: AuditLog;
  /** Where an uploaded model's initial weights are kept. */
  checkpoints: Checkpoints;
}

const MiB = 1024 * 1024;
/** A create-task body may carry a whole model: the weights' base64, model.json and the rest of the spec. */
const CREATE_BODY_LIMIT = base64Length(MODEL_LIMITS.weightsBytes) + MODEL_LIMITS.modelJsonBytes + MiB;

/** A body over the limit is a model too large: answered with its code, like every other failure. */
function bodyTooLargeIsModelTooLarge(error: FastifyError): never {
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    throw new TributaryError('MODEL_TOO_LARGE', `the request is over ${Math.floor(CREATE_BODY_LIMIT / MiB)} MiB: weights at most ${MODEL_LIMITS.weightsBytes / MiB} MiB, model.json ${MODEL_LIMITS.modelJsonBytes / MiB} MiB`);
  }
  // Thrown on: the app's error handler answers it.
  throw error;
}

const TaskParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });

export const taskRoutes: FastifyPluginAsync<TaskRoutesOptions> = async (app, { store, coordinator, audit, checkpoints }) => {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const getTask = (id: number) => requireTask(store, id);

  api.get('/tasks', {
    config: { access: 'viewer' },
    schema: { summary: 'List tasks', tags: ['tasks'], response: { 200: Type.Array(TaskRecord) } },
  }, () => store.listTasks());

  api.post('/tasks', {
    config: { access: 'operator' },
    bodyLimit: CREATE_BODY_LIMIT,
    errorHandler: bodyTooLargeIsModelTooLarge,
    schema: {
      summary: 'Create a task; omitted fields take their defaults',
      tags: ['tasks'],
      body: TaskSpecInput,
      response: { 201: TaskRecord, 400: ErrorReply, 413: ErrorReply },
      description: [
        'Refused with AGGREGATION_INVALID or PRIVACY_INVALID, naming the reason, when the aggregation rule or the privacy settings cannot hold (docs/errors.md).',
        '`model` is a built-in architecture (`{"kind":"mlp","hidden":[64]}`, cnn, gru), a stored TF.js topology (`{"kind":"layers","topology":{…}}`),',
        'or an upload: `{"kind":"layers","modelJson":<model.json as tensorflowjs_converter or model.save() write it>,"weights":"<base64 of the weight files its manifest lists, concatenated in order>"}`',
        '(without weights the model starts from its initializers). Every model is built once before the task is created and refused with one code:',
        `MODEL_TOO_LARGE (413: model.json over ${MODEL_LIMITS.modelJsonBytes / MiB} MiB, weights over ${MODEL_LIMITS.weightsBytes / MiB} MiB, over ${MODEL_LIMITS.parameters.toLocaleString('en')} parameters),`,
        'MODEL_LAYER_UNSUPPORTED (a layer class TF.js does not ship), MODEL_SHAPE_MISMATCH (input or output not the data schema\'s), MODEL_MALFORMED (no topology, a manifest that does not describe the weights)',
        'or MODEL_WEIGHTS_NOT_FINITE (NaN or Infinity). The task stores the topology; the uploaded weights are its round 0.',
      ].join(' '),
    },
  }, async (request, reply) => {
    const { model, ...input } = request.body;
    const defaults = withTaskDefaults(input);
    const accepted = await acceptModel(model ?? defaults.model, defaults.data);
    const spec = { ...defaults, model: accepted.spec };
    if (spec.minUpdates > spec.clientsPerRound) {
      throw new TributaryError('BAD_REQUEST', 'minUpdates cannot exceed clientsPerRound');
    }
    await checkStrategySettings(spec);
    const task = await store.createTask(spec);
    // Round 0 is made from them when the task first starts.
    if (accepted.weights) await checkpoints.saveInitialWeights(task.id, accepted.weights);
    await audit.record({ ...actorOf(request), action: 'task.create', target: `task ${task.id}`, detail: { name: spec.name, model: spec.model.kind, secure: spec.secure, mode: spec.mode, rule: spec.aggregation.rule, privacy: spec.privacy.mode } });
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
    const budget = PrivacyBudget.of(task.spec, await parameterCount(task.spec.model, task.spec.data));
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
