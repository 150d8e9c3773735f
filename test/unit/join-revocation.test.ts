import pLimit from 'p-limit';
import pino from 'pino';
import { beforeAll, expect, it } from 'vitest';
import { ClientRegistry } from '../../server/gateway/clients.ts';
import { TokenBucket } from '../../server/gateway/rate-limit.ts';
import { ClientConnection, type ClientSocket, type ConnectionContext } from '../../server/gateway/connection.ts';
import type { SessionGrace } from '../../server/gateway/session-grace.ts';
import type { Enrollments } from '../../server/auth/enrollment.ts';
import type { Store } from '../../server/store/store.ts';
import { cryptoReady, generateSigningKeyPair, sign } from '../../shared/crypto/sodium.ts';
import { TributaryError } from '../../shared/errors.ts';
import { joinProofMessage } from '../../shared/protocol/events.ts';
import { withTaskDefaults } from '../../shared/protocol/task.ts';

/** ClientConnection alone, with stand-ins for the store and enrollments: a revocation that lands while a join checks the key. */

beforeAll(cryptoReady);

it('makes no session for a key revoked after its enrollment check passed and before the session was made', async () => {
  let revocations = 0;
  let checks = 0;
  // The first check passes, and the revocation commits (and tells its listeners, who see no session yet) before the join goes on.
  const enrollments = {
    get revocations() {
      return revocations;
    },
    check: async () => {
      if (checks++ === 0) revocations++;
      else throw new TributaryError('NOT_ENROLLED', 'revoked');
    },
  };
  const clients = new ClientRegistry();
  const context: ConnectionContext = {
    store: { getTask: async (id: number) => ({ id, spec: withTaskDefaults({ name: 't' }), status: 'running', completedRounds: 0, createdAt: '' }) } as unknown as Store,
    enrollments: enrollments as unknown as Enrollments,
    clients,
    grace: {} as SessionGrace,
    serverKey: new Uint8Array(32),
    messageRate: { perSecond: 50, burst: 200 },
    joinLookups: pLimit(1),
    log: pino({ level: 'silent' }),
  };
  const socket = { disconnected: false, conn: { request: {} }, emit: () => true, join: async () => undefined, leave: async () => undefined };
  const connection = new ClientConnection(socket as unknown as ClientSocket, context, new TokenBucket(200, 800));
  const identity = generateSigningKeyPair();
  const { nonce } = connection.challenge();
  const proof = sign(joinProofMessage(nonce, 1, 'edge'), identity.secretKey);
  await expect(connection.join({ taskId: 1, kind: 'edge', proof, identityKey: identity.publicKey })).rejects.toMatchObject({ code: 'NOT_ENROLLED' });
  expect(clients.all()).toEqual([]);
  expect(checks).toBe(2);
});
