import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRng } from '../../shared/random.ts';
import { encodeUpdate } from '../../shared/codec/update-codec.ts';
import { cryptoReady, seal } from '../../shared/crypto/sodium.ts';
import { verifyRoundStart } from '../../shared/protocol/round-signature.ts';
import { handDrivenClient, MLP_LENGTHS, plainPayload, startHarness, type Harness } from '../support/harness.ts';

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
    const wrongLength = await handDrivenClient(h, task.id, { shard: 2 });
    const notFinite = await handDrivenClient(h, task.id, { shard: 3 });
    const unsealed = await handDrivenClient(h, task.id, { shard: 4 });
    h.spawnClient(task.id, 0);
    h.spawnClient(task.id, 1);

    const rng = createRng(7);
    const start1 = await wrongLength.nextRoundStart();
    // Round configs are signed by the server key handed out at join; any change breaks the signature.
    expect(() => verifyRoundStart(start1, wrongLength.serverKey)).not.toThrow();
    expect(() => verifyRoundStart({ ...start1, bits: 4 }, wrongLength.serverKey)).toThrow(/Signature/);
    const short = seal(plainPayload(start1, encodeUpdate(MLP_LENGTHS.slice(0, 5).map((n) => new Float32Array(n).fill(0.01)), { bits: 8, clipSigma: 6, rng })), start1.aggregatorKey);
    expect(await wrongLength.upload(start1, short)).toMatchObject({ ok: false, error: { code: 'UPDATE_WRONG_LENGTH' } });

    const start2 = await notFinite.nextRoundStart();
    const plain = encodeUpdate(MLP_LENGTHS.map((n) => new Float32Array(n).fill(0.01)), { bits: 8, clipSigma: 6, rng });
    const nan = plainPayload(start2, plain).slice();
    new DataView(nan.buffer, nan.byteOffset).setFloat32(nan.length - plain.length + 8, Number.NaN, true); // first tensor's clip
    const nanSealed = seal(nan, start2.aggregatorKey);
    expect(await notFinite.upload(start2, nanSealed)).toMatchObject({ ok: false, error: { code: 'UPDATE_NOT_FINITE' } });

    // Schema violations are typed errors too, and the sender, once rejected, stays out of the round.
    const malformed = await notFinite.socket.emitWithAck('update:chunk', { taskId: task.id, round: -1 } as never, new Uint8Array(1));
    expect(malformed).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
    const again = await notFinite.upload(start2, nanSealed);
    expect(again).toMatchObject({ ok: false, error: { code: 'UPLOAD_DUPLICATE' } });

    // A well-formed update that is not sealed to the round's aggregator key is refused.
    const start3 = await unsealed.nextRoundStart();
    expect(await unsealed.upload(start3, plainPayload(start3, plain))).toMatchObject({ ok: false, error: { code: 'DECRYPTION_FAILED' } });

    await h.waitForStatus(task.id, 'completed');
    const [round] = await h.app.store.listRounds(task.id);
    expect(round).toMatchObject({ round: 1, participants: 2, rejected: 3, dropped: 0 });
    wrongLength.socket.disconnect();
    notFinite.socket.disconnect();
    unsealed.socket.disconnect();
  });
});
