import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { parseCsv } from '../../shared/data/csv.ts';
import { encodeSamples, type RawSamples } from '../../shared/data/encode.ts';
import { TributaryError } from '../../shared/errors.ts';
import { actorOf } from '../auth/access.ts';
import type { AuditLog } from '../auth/model.ts';
import type { EvaluationSets } from '../data/evaluation-sets.ts';
import { requireTask, type Store } from '../store/store.ts';
import { ErrorReply } from './errors.ts';

/** An evaluation set's largest body: tens of thousands of rows, or a few thousand small images as JSON. */
const EVALUATION_SET_BYTES = 32 * 1024 * 1024;

/**
 * The one way the server holds data of a task: an evaluation set its operator uploads. The
 * server then scores every new global model on it too (next to federated evaluation).
 */
export const evaluationSetRoutes: FastifyPluginAsync<{ store: Store; evaluationSets: EvaluationSets; audit: AuditLog }> = async (app, { store, evaluationSets, audit }) => {
  // Tables and text arrive as they are kept: CSV and plain text, read as strings.
  for (const type of ['text/csv', 'text/plain']) {
    app.addContentTypeParser(type, { parseAs: 'string', bodyLimit: EVALUATION_SET_BYTES }, (_request, body, done) => done(null, body));
  }
  app.withTypeProvider<TypeBoxTypeProvider>().put('/tasks/:id/evaluation-set', {
    config: { access: 'operator' },
    bodyLimit: EVALUATION_SET_BYTES,
    schema: {
      summary: "Upload the task's server-side evaluation set: CSV (tabular tasks), plain text (text tasks), or JSON { samples } (rows, images as { pixels, label }, or a string)",
      tags: ['tasks'],
      params: Type.Object({ id: Type.Integer({ minimum: 1 }) }),
      response: { 200: Type.Object({ samples: Type.Integer() }), 400: ErrorReply, 404: ErrorReply },
      description: "Checked against the task's data schema: the first bad sample is named in a DATA_* error (docs/errors.md). Replaces an earlier upload; used from the next round on.",
    },
  }, async (request) => {
    const task = await requireTask(store, request.params.id);
    const schema = task.spec.data;
    const body = request.body as unknown;
    let samples: RawSamples;
    if (typeof body === 'string') {
      samples = schema.kind === 'tabular' ? parseCsv(body, 'evaluation set') : body;
    } else if (body && typeof body === 'object' && 'samples' in body) {
      samples = (body as { samples: RawSamples }).samples;
    } else {
      throw new TributaryError('BAD_REQUEST', 'send CSV (text/csv), text (text/plain) or JSON { "samples": [...] }');
    }
    const set = encodeSamples(schema, samples);
    await evaluationSets.save(task.id, set);
    await audit.record({ ...actorOf(request), action: 'task.evaluation-set', target: `task ${task.id}`, detail: { samples: set.n } });
    return { samples: set.n };
  });
};
