import type { FastifyPluginAsync } from 'fastify';
import { fingerprint, toBase64 } from '../../shared/crypto/sodium.ts';
import type { BuiltinSplits } from '../data/splits.ts';
import type { EvaluationSets } from '../data/evaluation-sets.ts';
import { evaluationSetRoutes } from './evaluation-set.ts';
import type { Accounts } from '../auth/accounts.ts';
import type { Enrollments } from '../auth/enrollment.ts';
import type { AuditLog } from '../auth/model.ts';
import { DemoShards } from '../data/demo-shards.ts';
import type { ClientRegistry } from '../gateway/clients.ts';
import type { Checkpoints } from '../rounds/checkpoints.ts';
import type { Coordinator } from '../rounds/coordinator.ts';
import type { Store } from '../store/store.ts';
import { auditRoutes } from './audit.ts';
import { authRoutes } from './auth.ts';
import { clientRoutes } from './clients.ts';
import { enrollmentRoutes } from './enrollment.ts';
import { modelRoutes } from './model.ts';
import { roundRoutes } from './rounds.ts';
import { taskRoutes } from './tasks.ts';
import { userRoutes } from './users.ts';

export interface ApiOptions {
  store: Store;
  accounts: Accounts;
  enrollments: Enrollments;
  audit: AuditLog;
  coordinator: Coordinator;
  checkpoints: Checkpoints;
  clients: ClientRegistry;
  /** The built-in data sets, which demo shards are cut from. */
  splits: BuiltinSplits;
  /** Evaluation sets operators upload for their tasks. */
  evaluationSets: EvaluationSets;
  /** The server's Ed25519 public key. */
  serverKey: Uint8Array;
}

/** The REST API (register it under /api), with its OpenAPI document; @fastify/swagger must be registered first. */
export const apiRoutes: FastifyPluginAsync<ApiOptions> = async (api, options) => {
  const { store, accounts, enrollments, audit, coordinator, checkpoints, clients, serverKey } = options;
  api.get('/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, () => api.swagger());
  api.get('/server-key', {
    config: { access: 'public' },
    schema: { summary: "The server's Ed25519 public key (base64) and its fingerprint, for pinning", tags: ['server'] },
  }, () => ({ publicKey: toBase64(serverKey), fingerprint: fingerprint(serverKey) }));
  await api.register(authRoutes, { accounts });
  await api.register(userRoutes, { accounts });
  await api.register(taskRoutes, { store, coordinator, audit, checkpoints });
  await api.register(roundRoutes, { store });
  await api.register(evaluationSetRoutes, { store, evaluationSets: options.evaluationSets, audit });
  await api.register(modelRoutes, { store, checkpoints });
  await api.register(enrollmentRoutes, { enrollments });
  await api.register(auditRoutes, { audit });
  await api.register(clientRoutes, { store, clients, shards: new DemoShards(options.splits) });
};
