import pLimit from 'p-limit';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { ClientRegistry } from '../../server/gateway/clients.ts';
import { TokenBucket } from '../../server/gateway/rate-limit.ts';
import { ClientConnection, type ClientSocket, type ConnectionContext } from '../../server/gateway/connection.ts';
import type { SessionGrace } from '../../server/gateway/session-grace.ts';
import type { Enrollments } from '../../server/auth/enrollment.ts';
import type { Store } from '../../server/store/store.ts';
import { cryptoReady, generateSigningKeyPair, sign } from '../../shared/crypto/sodium.ts';
import { joinProofMessage } from '../../shared/protocol/events.ts';
import { withTaskDefaults, type TaskRecord } from '../../shared/protocol/task.ts';

/** A socket that records the rooms it joins and leaves; `disconnected` is the test's to set. */
function fakeSocket() {
  const rooms: string[] = [];
  const socket = {
    disconnected: false,
    conn: { request: {} },
    emit: () => true,
    join: async (room: string) => void rooms.push(`+${room}`),
    leave: async (room: string) => void rooms.push(`-${room}`),
  };
  return { socket, rooms };
}

const task = (id: number): TaskRecord => ({ id, spec: withTaskDefaults({ name: `t${id}` }), status: 'running', completedRounds: 0, createdAt: '' });

describe('a client connection joining a task', () => {
  beforeAll(cryptoReady);

  function connection(onCheck: () => void = () => {}) {
    const { socket, rooms } = fakeSocket();
    const clients = new ClientRegistry();
    const ended: string[] = [];
    const context: ConnectionContext = {
      store: { getTask: async (id: number) => task(id) } as unknown as Store,
      enrollments: { check: async () => onCheck() } as unknown as Enrollments,
      clients,
      grace: { end: (s: { id: string }) => ended.push(s.id), resumed: () => {}, wait: () => {} } as unknown as SessionGrace,
      serverKey: new Uint8Array(32),
      messageRate: { perSecond: 50, burst: 200 },
      joinLookups: pLimit(1),
      log: pino({ level: 'silent' }),
    };
    const identity = generateSigningKeyPair();
    const c = new ClientConnection(socket as unknown as ClientSocket, context, new TokenBucket(200, 800));
    const join = (taskId: number) => {
      const { nonce } = c.challenge();
      return c.join({ taskId, kind: 'edge', proof: sign(joinProofMessage(nonce, taskId, 'edge'), identity.secretKey), identityKey: identity.publicKey });
    };
    return { c, socket, rooms, clients, ended, join };
  }

  it('makes no session when the socket closes while the join looks up the task and enrollment', async () => {
    let close = () => {};
    const { socket, clients, join } = connection(() => close());
    close = () => (socket.disconnected = true);
    await expect(join(1)).rejects.toMatchObject({ code: 'NOT_JOINED' });
    expect(clients.all()).toEqual([]);
  });

  it('leaves the old task\'s room and ends its session when it joins another task on the same socket', async () => {
    const { rooms, clients, ended, join } = connection();
    const first = await join(1);
    const second = await join(2);
    expect(rooms).toEqual(['+task:1', '-task:1', '+task:2']);
    expect(ended).toEqual([first.clientId]);
    expect(clients.get(second.clientId)?.taskId).toBe(2);
  });
});
