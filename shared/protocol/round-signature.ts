import { concatBytes, hash, sign, utf8, verify } from '../crypto/sodium.ts';
import { TributaryError } from '../errors.ts';
import type { RoundStart } from './events.ts';

/**
 * What the server's Ed25519 key signs in a round config: every field a client acts on,
 * in a fixed order, plus a hash of the weights when they are sent. A tampered or
 * unsigned config is refused before anything is trained or sent.
 */
/** The weights' hash, once per encoded model: a round sends one weights buffer to every participant (800 KB each for the MLP). */
const weightsDigests = new WeakMap<Uint8Array, Uint8Array>();
function weightsDigest(weights: Uint8Array): Uint8Array {
  let digest = weightsDigests.get(weights);
  if (!digest) weightsDigests.set(weights, (digest = hash(weights)));
  return digest;
}

function signedBytes(start: Omit<RoundStart, 'signature'>): Uint8Array {
  const { hyper, secure } = start;
  const fields = JSON.stringify([
    'tributary-round-v1', start.taskId, start.round, start.modelVersion, start.deadline, start.bits,
    start.clipSigma, hyper.localEpochs, hyper.batchSize, hyper.learningRate, hyper.optimizer, hyper.proximalMu, start.chunkBytes,
    start.budget, start.metricSums, start.evaluate,
    secure && [
      secure.participants.map((p) => [p.clientId, p.samples]), secure.neighbours, secure.threshold,
      secure.ringBits, secure.clips, secure.sampleScale, secure.keysDeadline, secure.sharesDeadline,
      secure.input.normBound, secure.input.noise && [secure.input.noise.variance, secure.input.noise.minSurvivors],
    ],
  ]);
  return concatBytes(
    utf8(fields),
    start.aggregatorKey,
    start.weights ? weightsDigest(start.weights) : new Uint8Array(0),
    ...(secure ? [secure.graphSeed, secure.identityKeys] : []),
  );
}

export function signRoundStart(start: Omit<RoundStart, 'signature'>, serverSecretKey: Uint8Array): RoundStart {
  return { ...start, signature: sign(signedBytes(start), serverSecretKey) };
}

/** Throws SIGNATURE_INVALID unless the pinned server key signed exactly this config. */
export function verifyRoundStart(start: RoundStart, serverPublicKey: Uint8Array): void {
  const signature = start.signature instanceof Uint8Array ? start.signature : new Uint8Array(start.signature ?? []);
  if (!verify(signature, signedBytes(start), serverPublicKey)) {
    throw new TributaryError('SIGNATURE_INVALID', `round ${start.round} config`);
  }
}
