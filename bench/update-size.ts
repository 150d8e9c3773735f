import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo, Socket as NetSocket } from 'node:net';
import { join } from 'node:path';
import { Server } from 'socket.io';
import { io as connect } from 'socket.io-client';
import { activateNodeBackend } from '../client/node/tf.ts';
import { decodeUpdate, encodeUpdate } from '../shared/codec/update-codec.ts';
import { cryptoReady, generateBoxKeyPair, openSealed, seal, SEAL_OVERHEAD_BYTES } from '../shared/crypto/sodium.ts';
import type { BuiltinName } from '../shared/data/builtin.ts';
import { countParameters, subtractWeights } from '../shared/ml/aggregate.ts';
import { DEFAULT_MODELS, type ModelSpec } from '../shared/ml/model-spec.ts';
import { buildModel, readWeights } from '../shared/ml/models.ts';
import type { ChunkMeta } from '../shared/protocol/events.ts';
import { withTaskDefaults } from '../shared/protocol/task.ts';
import { createRng } from '../shared/random.ts';
import type { BenchOptions } from './options.ts';
import { table } from './report.ts';

/**
 * Bytes per parameter of one 8-bit plain update, for every built-in model kind: the
 * encoded update (update-codec.ts: levels plus a header per tensor), sealed to the round's
 * aggregator key (+48 bytes; what the chunks carry), and on the wire: the sealed payload
 * sent as the client sends it (256 KiB `update:chunk` messages over socket.io on a
 * WebSocket) to a socket.io server on localhost, counted as the gateway counts an upload,
 * in bytes read from the client's TCP connection (so framing included). The size depends
 * only on the model's tensor shapes, so the delta is the difference of two seeded
 * initialisations: no training needed.
 */

export interface UpdateSizeSettings {
  models: ReadonlyArray<{ task: BuiltinName; model: ModelSpec }>;
  bits: 8;
  /** `tributary serve --chunk-kb`'s default: the largest chunk a client sends. */
  chunkBytes: number;
  targetBytesPerParameter: number;
}

export function defaultSettings(): UpdateSizeSettings {
  return {
    models: [
      { task: 'fashion-mnist', model: DEFAULT_MODELS.mlp },
      { task: 'fashion-mnist', model: DEFAULT_MODELS.cnn },
      { task: 'penguins', model: withTaskDefaults({ dataset: 'penguins' }).model },
      { task: 'fortunes', model: withTaskDefaults({ dataset: 'fortunes' }).model },
    ],
    bits: 8,
    chunkBytes: 256 * 1024,
    targetBytesPerParameter: 1.05,
  };
}

export async function run(options: BenchOptions): Promise<void> {
  await runUpdateSize(options, defaultSettings());
}

/** A socket.io server and client on localhost; `send` emits `update:chunk` messages and returns the bytes the server read. */
async function loopback(maxChunkBytes: number) {
  const http = createServer();
  // As server/app.ts configures it: a chunk plus its metadata per message.
  const server = new Server(http, { maxHttpBufferSize: maxChunkBytes + 16 * 1024, serveClient: false });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const tcp = new Promise<NetSocket>((resolve) =>
    server.on('connection', (socket) => {
      socket.on('update:chunk', (meta: ChunkMeta, _data: Uint8Array, ack: (reply: unknown) => void) => ack({ ok: true, value: { next: meta.index + 1, complete: meta.index === meta.count - 1 } }));
      resolve((socket.conn.request as { socket: NetSocket }).socket);
    }),
  );
  const client = connect(`http://127.0.0.1:${(http.address() as AddressInfo).port}`, { transports: ['websocket'], reconnection: false });
  const read = await tcp;
  return {
    async send(payload: Uint8Array, samples: number): Promise<number> {
      const before = read.bytesRead;
      const count = Math.max(1, Math.ceil(payload.byteLength / maxChunkBytes));
      for (let index = 0; index < count; index++) {
        const meta: ChunkMeta = { taskId: 1, round: 20, index, count, totalBytes: payload.byteLength, samples, attempt: '0000000000000000' };
        await client.timeout(10_000).emitWithAck('update:chunk', meta, payload.subarray(index * maxChunkBytes, (index + 1) * maxChunkBytes));
      }
      return read.bytesRead - before;
    },
    async close() {
      client.close();
      await server.close();
    },
  };
}

export interface UpdateSize {
  task: BuiltinName;
  model: ModelSpec;
  parameters: number;
  tensors: number;
  encodedBytes: number;
  sealedBytes: number;
  wireBytes: number;
}

export async function runUpdateSize(options: BenchOptions, settings: UpdateSizeSettings): Promise<void> {
  await cryptoReady();
  const wire = await loopback(settings.chunkBytes);
  const results: UpdateSize[] = [];
  try {
    for (const { task, model } of settings.models) {
      const spec = withTaskDefaults({ dataset: task, model, bits: settings.bits });
      await activateNodeBackend(model);
      const [a, b] = await Promise.all([buildModel(model, spec.data, 1), buildModel(model, spec.data, 2)]);
      const delta = subtractWeights(readWeights(a), readWeights(b));
      [a, b].forEach((m) => m.dispose());
      const lengths = delta.map((t) => t.length);
      const encoded = encodeUpdate(delta, { bits: spec.bits, clipSigma: spec.clipSigma, rng: createRng(1), residual: lengths.map((n) => new Float32Array(n)) });
      const aggregator = generateBoxKeyPair();
      const sealed = seal(encoded, aggregator.publicKey);
      decodeUpdate(openSealed(sealed, aggregator), lengths, spec.bits); // what the server accepts
      const wireBytes = await wire.send(sealed, 2_000);
      results.push({ task, model, parameters: countParameters(delta), tensors: delta.length, encodedBytes: encoded.length, sealedBytes: sealed.length, wireBytes });
    }
  } finally {
    await wire.close();
  }
  const target = settings.targetBytesPerParameter;
  const perParameter = (bytes: number, r: UpdateSize) => (bytes / r.parameters).toFixed(4);
  const verdict = (bytes: number, r: UpdateSize) => (bytes / r.parameters <= target ? 'met' : 'MISSED');
  const rows = results.map((r) => [
    `${r.model.kind} on ${r.task}`,
    r.parameters.toLocaleString('en'),
    r.tensors,
    r.encodedBytes.toLocaleString('en'),
    r.sealedBytes.toLocaleString('en'),
    r.wireBytes.toLocaleString('en'),
    perParameter(r.sealedBytes, r),
    perParameter(r.wireBytes, r),
    verdict(r.sealedBytes, r),
    verdict(r.wireBytes, r),
  ]);
  const headers = ['model', 'params', 'tensors', 'encoded B', 'sealed B', 'on the wire B', 'sealed B/param', 'wire B/param', `sealed ≤ ${target}`, `wire ≤ ${target}`];
  const lines = [
    `Update size: one ${settings.bits}-bit plain update per model kind. Encoded: 4 header bytes + per tensor 8 (count, clip) + 1 byte a value; ` +
      `sealed: + ${SEAL_OVERHEAD_BYTES} (crypto_box_seal); on the wire: the sealed payload in ${settings.chunkBytes / 1024} KiB update:chunk messages over socket.io/WebSocket, ` +
      'bytes read from the TCP connection by a localhost socket.io server (what a round record\'s uploadBytes counts per client).',
    '',
    table(headers, rows),
  ];
  console.log(`\n${lines.join('\n')}`);
  await mkdir(options.out, { recursive: true });
  const json = join(options.out, 'update-size.json');
  await writeFile(json, JSON.stringify({ settings, results }, null, 2));
  console.log(`\nraw results: ${json}`);
}
