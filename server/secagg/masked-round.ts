import { decodeSecureSum, nextClips, secureInputLength } from '../../shared/codec/secure-codec.ts';
import { SEAL_OVERHEAD_BYTES, concatBytes, generateBoxKeyPair, openSealed, randomBytes } from '../../shared/crypto/sodium.ts';
import type { TaskSpec } from '../../shared/protocol/task.ts';
import { decodeMaskedUpload, PARTNERS_SIGNATURE_BYTES, roundContext, type SecureRoundConfig } from '../../shared/secagg/protocol.ts';
import { secureParameters } from '../../shared/secagg/parameters.ts';
import { decodeRing, ringBits, ringWireBytes } from '../../shared/secagg/ring.ts';
import type { ParticipantRecord } from '../../shared/protocol/task.ts';
import type { ClientSession } from '../gateway/clients.ts';
import { roundBase } from '../rounds/dispatch.ts';
import type { Contribution } from '../rounds/global-model.ts';
import type { RoundRun } from '../rounds/round-run.ts';
import type { RoundPlan } from '../rounds/scheduler.ts';
import { SecureRound, type MaskedUpload } from './secure-round.ts';

/** Longest wait for one phase of a secure round. */
const SECURE_PHASE_MS = 30_000;

/** Each participant's FedAvg weight: the distinct samples its share of work covers. */
const weightOf = (plan: RoundPlan, p: ClientSession) => Math.min(p.samples, plan.budgets.get(p.id) ?? p.samples);

/** The secure part of a round's config: participants, graph, threshold, ring, clips and key-phase deadlines. */
export function secureRoundConfig(spec: TaskSpec, plan: RoundPlan, clips: number[], now: number): SecureRoundConfig {
  const { participants } = plan;
  const n = participants.length;
  const { neighbours, threshold } = secureParameters(n, spec.neighbours, spec.threshold);
  const phaseMs = phaseDuration(spec);
  return {
    participants: participants.map((p) => ({ clientId: p.id, samples: weightOf(plan, p) })),
    identityKeys: concatBytes(...participants.map((p) => p.identityKey)),
    neighbours,
    threshold,
    ringBits: ringBits(spec.bits as Exclude<TaskSpec['bits'], 32>, n),
    graphSeed: randomBytes(32),
    clips,
    keysDeadline: now + phaseMs,
    sharesDeadline: now + 2 * phaseMs,
  };
}

/** Each phase around the upload takes at most this long. */
const phaseDuration = (spec: TaskSpec) => Math.min(SECURE_PHASE_MS, spec.roundDeadlineMs / 4);

/**
 * A secure round (SecAgg+): the server sees masked vectors only and learns their sum.
 * Clients pre-scale by samples, so the sum divided by the survivors' weight is FedAvg;
 * the survivors' summed rms statistic sets the next round's clips.
 */
export async function runMaskedRound(run: RoundRun): Promise<Contribution> {
  const { task, global, plan, options } = run;
  const { spec, id } = task;
  const { participants, round } = plan;
  const now = Date.now();
  const deadline = now + spec.roundDeadlineMs;
  const config = secureRoundConfig(spec, plan, [...global.clips], now);
  const aggregator = generateBoxKeyPair();
  const inputLength = secureInputLength(global.lengths);
  const protocol = new SecureRound({ config, context: roundContext(id, round, aggregator.publicKey), inputLength, phaseMs: phaseDuration(spec), unmask: options.unmask });
  // Every byte a participant sends this round counts: keys and shares as well as its upload.
  const startBytes = participants.map((p) => p.wireBytes());
  let rejected = 0;
  let participantsDetail: ParticipantRecord[] | undefined;
  run.runProtocol(protocol);
  try {
    run.announce(roundBase(task, options.chunkBytes, round, deadline, aggregator, config));
    const { sum, survivors, unmaskMs, forgers, excluded } = await protocol.run(async (sharers) => {
      const collected = await run.collect<MaskedUpload>({
        uploaders: sharers.map((i) => participants[i]!),
        deadline,
        maxBytes: SEAL_OVERHEAD_BYTES + PARTNERS_SIGNATURE_BYTES + ringWireBytes(inputLength, config.ringBits),
        decode: (bytes) => {
          const { partnersSignature, ring } = decodeMaskedUpload(openSealed(bytes, aggregator));
          return { partnersSignature, masked: decodeRing(ring, config.ringBits, inputLength) };
        },
      });
      rejected = collected.rejected.length;
      participantsDetail = run.account(collected);
      return new Map(collected.accepted.map((u) => [protocol.indexFor(u.clientId), u.value]));
    });
    if (forgers.length > 0 || excluded.length > 0) {
      const ids = (list: number[]) => list.map((i) => participants[i]!.id);
      options.log.warn({ taskId: id, round, forgers: ids(forgers), excluded: ids(excluded) }, 'participants misbehaved: forged shares left out of the reconstruction, uploads signed for other partners left out of the sum');
    }
    const decodeStarted = performance.now();
    const meanSamples = config.participants.reduce((a, p) => a + p.samples, 0) / participants.length;
    const samples = survivors.reduce((a, u) => a + config.participants[u]!.samples, 0);
    const bits = spec.bits as Exclude<TaskSpec['bits'], 32>;
    const reading = decodeSecureSum(sum, { bits, clips: config.clips, lengths: global.lengths, survivors: survivors.length, weight: samples / meanSamples });
    const clips = nextClips(config.clips, reading.rmsRatio, spec.clipSigma);
    options.log.debug({ taskId: id, round, clips, rmsRatio: reading.rmsRatio }, 'secure round unmasked');
    return {
      mean: reading.mean,
      clips,
      aggregationMs: unmaskMs + performance.now() - decodeStarted,
      participants: survivors.length,
      dropped: participants.length - survivors.length - rejected - excluded.length,
      late: 0,
      rejected: rejected + excluded.length,
      samples,
      uploadBytes: survivors.reduce((a, u) => a + participants[u]!.wireBytes() - startBytes[u]!, 0),
      staleness: 0,
      startedAt: run.startedAt,
      ...(participantsDetail ? { participantsDetail } : {}),
    };
  } finally {
    run.runProtocol(undefined);
  }
}
