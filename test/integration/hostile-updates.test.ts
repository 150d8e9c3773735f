import type { Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientToServerEvents, Reply, RoundStart, ServerToClientEvents } from '../../shared/protocol/events.ts';
import { createRng } from '../../shared/random.ts';
import { encodeUpdate } from '../../shared/codec/update-codec.ts';
import { cryptoReady, seal } from '../../shared/crypto/sodium.ts';
import { verifyRoundStart } from '../../shared/protocol/round-signature.ts';
import { joinRaw, startHarness, type Harness } from '../support/harness.ts';

type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;
const MLP_LENGTHS = [156_800, 200, 40_000, 200, 2_000, 10];

/** A hand-driven socket that joins like a client and sends whatever the test crafts. */
async function rogue(h: Harness, taskId: number, shard: number): Promise<{ socket: ClientSocket; roundStart: Promise<RoundStart>; serverKey: Uint8Array }> {
  const { socket, reply } = await joinRaw(h.url, taskId, (key) => h.enroll(taskId, key), { shard });
  const roundStart = new Promise<RoundStart>((resolve) => socket.once('round:start', resolve));
  expect(reply.ok).toBe(true);
  const ready = await socket.emitWithAck('client:ready', { taskId, samples: 500, backend: 'cpu', cachedVersion: -1 });
  expect(ready.ok).toBe(true);
  return { socket, roundStart, serverKey: reply.ok ? new Uint8Array(reply.value.serverKey) : new Uint8Array() };
}

function upload(socket: ClientSocket, start: RoundStart, payload: Uint8Array): Promise<Reply<unknown>> {
  return socket.emitWithAck(
    'update:chunk',
    { taskId: start.taskId, round: start.round, index: 0, count: 1, totalBytes: payload.byteLength, samples: 500 },
    payload,
  );
}

describe('hostile updates during a live round', () => {
  let h: Harness;
  beforeAll(async () => {
    await cryptoReady();
    h = await startHarness();
  });
  afterAll(() => h.close());

  it('answers wrong-length and NaN updates with typed errors and completes the round for the others', async () => {
    const task = await h.createTask({
      name: 'hostile', partition: { kind: 'iid' }, shards: 5, clientsPerRound: 5, rounds: 1, bits: 8,
      trainLimit: 4000, testLimit: 1000,
    });
    await h.app.coordinator.start(task.id);
    const wrongLength = await rogue(h, task.id, 2);
    const notFinite = await rogue(h, task.id, 3);
    const unsealed = await rogue(h, task.id, 4);
    h.spawnClient(task.id, 0);
    h.spawnClient(task.id, 1);

    const rng = createRng(7);
    const start1 = await wrongLength.roundStart;
    // Round configs are signed by the server key handed out at join; any change breaks the signature.
    expect(() => verifyRoundStart(start1, wrongLength.serverKey)).not.toThrow();
    expect(() => verifyRoundStart({ ...start1, bits: 4 }, wrongLength.serverKey)).toThrow(/Signature/);
    const short = seal(encodeUpdate(MLP_LENGTHS.slice(0, 5).map((n) => new Float32Array(n).fill(0.01)), { bits: 8, clipSigma: 6, rng }), start1.aggregatorKey);
    expect(await upload(wrongLength.socket, start1, short)).toMatchObject({ ok: false, error: { code: 'UPDATE_WRONG_LENGTH' } });

    const start2 = await notFinite.roundStart;
    const plain = encodeUpdate(MLP_LENGTHS.map((n) => new Float32Array(n).fill(0.01)), { bits: 8, clipSigma: 6, rng });
    const nan = plain.slice();
    new DataView(nan.buffer, nan.byteOffset).setFloat32(8, Number.NaN, true); // first tensor's clip
    const nanSealed = seal(nan, start2.aggregatorKey);
    expect(await upload(notFinite.socket, start2, nanSealed)).toMatchObject({ ok: false, error: { code: 'UPDATE_NOT_FINITE' } });

    // Schema violations are typed errors too, and the sender, once rejected, stays out of the round.
    const malformed = await notFinite.socket.emitWithAck('update:chunk', { taskId: task.id, round: -1 } as never, new Uint8Array(1));
    expect(malformed).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
    const again = await upload(notFinite.socket, start2, nanSealed);
    expect(again).toMatchObject({ ok: false, error: { code: 'UPLOAD_DUPLICATE' } });

    // A well-formed update that is not sealed to the round's aggregator key is refused.
    const start3 = await unsealed.roundStart;
    expect(await upload(unsealed.socket, start3, plain)).toMatchObject({ ok: false, error: { code: 'DECRYPTION_FAILED' } });

    await h.waitForStatus(task.id, 'completed');
    const [round] = await h.app.store.listRounds(task.id);
    expect(round).toMatchObject({ round: 1, participants: 2, rejected: 3, dropped: 0 });
    wrongLength.socket.disconnect();
    notFinite.socket.disconnect();
    unsealed.socket.disconnect();
  });
});
