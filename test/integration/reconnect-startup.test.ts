import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Socket } from 'socket.io';
import type { FederatedClient, FederatedClientOptions } from '../../client/federated-client.ts';
import { loadDemoShard } from '../../client/node/demo-data.ts';
import { activateNodeBackend } from '../../client/node/tf.ts';
import { cryptoReady } from '../../shared/crypto/sodium.ts';
import { inProcessClient, startHarness, type Harness } from '../support/harness.ts';

/** A promise and its resolver, to hold a client's set-up until the test lets it go on. */
function latch<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

// Seen with 10 edge clients on 2 cores: a ping timeout while the backend and data were
// loading; the reconnect's join raced the first one and the client died on NOT_JOINED.
describe('a client that loses its connection while it sets up', () => {
  let h: Harness;
  beforeAll(async () => {
    await cryptoReady();
    h = await startHarness({ sessionGraceMs: 20_000 });
  });
  afterAll(() => h.close());

  for (const held of ['activateBackend', 'data'] as const) {
    it(`rejoins and trains when the connection drops during ${held}`, async () => {
      const task = await h.createTask({ name: `drop during ${held}`, shards: 1, clientsPerRound: 1, minUpdates: 1, rounds: 1, trainLimit: 1_200, testLimit: 500 });
      const connections: Socket[] = [];
      const secondConnection = latch();
      const onConnection = (socket: Socket) => {
        connections.push(socket);
        if (connections.length === 2) secondConnection.open();
      };
      h.app.io.on('connection', onConnection);
      const setUpStarted = latch();
      const release = latch();
      const hold = async <T>(work: () => Promise<T>): Promise<T> => {
        setUpStarted.open();
        await release.promise;
        return work();
      };
      const options: Partial<FederatedClientOptions> = held === 'data'
        ? { data: ({ task: t }) => hold(() => loadDemoShard(t.spec, 0)) }
        : { activateBackend: (t) => hold(() => activateNodeBackend(t.spec.model)) };
      const client: FederatedClient = inProcessClient(h, task.id, 0, options);
      const errors: Error[] = [];
      const joined: boolean[] = [];
      client.on('error', (error) => errors.push(error));
      client.on('joined', (e) => joined.push(e.resumed));
      try {
        const started = client.start();
        await setUpStarted.promise;
        connections[0]!.conn.close(); // as a ping timeout would: the client reconnects by itself
        await secondConnection.promise;
        release.open(); // the first join's set-up finishes while the second connection joins
        await started;
        await h.app.coordinator.start(task.id);
        await h.waitForStatus(task.id, 'completed');

        expect(errors).toEqual([]);
        // Joined once, on the second connection, taking back the session the first one opened.
        expect(joined).toEqual([true]);
        const [round] = await h.app.store.listRounds(task.id);
        expect(round).toMatchObject({ participants: 1, dropped: 0 });
      } finally {
        h.app.io.off('connection', onConnection);
        client.stop();
      }
    });
  }

  it('ends a start() still setting up when the client is stopped, instead of leaving it pending', async () => {
    const task = await h.createTask({ name: 'stopped during set-up' });
    const setUpStarted = latch();
    const client = inProcessClient(h, task.id, 0, {
      activateBackend: () => {
        setUpStarted.open();
        return new Promise<never>(() => {}); // never finishes
      },
    });
    const started = client.start();
    await setUpStarted.promise;
    client.stop();
    await expect(started).rejects.toMatchObject({ code: 'NOT_JOINED' });
  });

  it('still fails start() on a join the server refuses', async () => {
    const task = await h.createTask({ name: 'not enrolled' });
    const client = inProcessClient(h, task.id, 0, { enrollment: undefined }); // a fresh identity, never enrolled
    await expect(client.start()).rejects.toMatchObject({ code: 'NOT_ENROLLED' });
    client.stop();
  });
});
