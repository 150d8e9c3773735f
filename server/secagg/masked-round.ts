import { decodeSecureSum, nextClips, secureInputLength } from '../../shared/codec/secure-codec.ts';
import { SEAL_OVERHEAD_BYTES, concatBytes, generateBoxKeyPair, openSealed, randomBytes } from '../../shared/crypto/sodium.ts';
import type { TaskSpec } from '../../shared/protocol/task.ts';
import { TributaryError } from '../../shared/errors.ts';
import type { Weights } from '../../shared/ml/aggregate.ts';
import { decodeDistributedSum, distributedRingBits } from '../../shared/privacy/distributed.ts';
import type { DistributedNoise } from '../privacy/budget.ts';
import { decodeMaskedUpload, PARTNERS_SIGNATURE_BYTES, roundContext, type SecureRoundConfig } from '../../shared/secagg/protocol.ts';
import { secureParameters } from '../../shared/secagg/parameters.ts';
import { decodeRing, ringBits, ringWireBytes, type RingVector } from '../../shared/secagg/ring.ts';
import type { ParticipantRecord } from '../../shared/protocol/task.ts';
import type { ClientSession } from '../gateway/clients.ts';
import { roundBase } from '../rounds/dispatch.ts';
import type { Contribution } from '../rounds/global-model.ts';
import type { RoundRun } from '../rounds/round-run.ts';
import type { RoundPlan } from '../rounds/scheduler.ts';
import { SecureRound } from './secure-round.ts';
import { decodeMetricLimbs, metricLimbsLength } from '../../shared/codec/metric-sums.ts';
import { federatedMetrics } from '../rounds/federated-evaluation.ts';

/** Longest wait for one phase of a secure round. */
const SECURE_PHASE_MS = 30_000;

/** Each participant's FedAvg weight: the distinct samples its share of work covers. */
const weightOf = (plan: RoundPlan, p: ClientSession) => Math.min(p.samples, plan.budgets.get(p.id) ?? p.samples);

/**
 * The secure part of a round's config: participants, graph, threshold, ring, clips, what
 * devices do to their inputs, and key-phase deadlines. Under distributed DP every device
 * weighs 1 (a sample count would unbound one user's influence), quantizes with the
 * budget's range, and adds its share of the noise; the ring widens to hold the noise.
 */
export function secureRoundConfig(spec: TaskSpec, plan: RoundPlan, clips: number[], now: number, noise?: DistributedNoise): SecureRoundConfig {
  const { participants } = plan;
  const n = participants.length;
  const { neighbours, threshold } = secureParameters(n, spec.neighbours, spec.threshold);
  const phaseMs = phaseDuration(spec);
  const bits = spec.bits as Exclude<TaskSpec['bits'], 32>;
  const deviceVariance = noise ? noise.variance / noise.minSurvivors : 0;
  return {
    participants: participants.map((p) => ({ clientId: p.id, samples: noise ? 1 : weightOf(plan, p) })),
    identityKeys: concatBytes(...participants.map((p) => p.identityKey)),
    neighbours,
    threshold,
    ringBits: noise ? distributedRingBits(bits, n, deviceVariance) : ringBits(bits, n),
    graphSeed: randomBytes(32),
    clips: noise ? clips.map(() => noise.params.clip) : clips,
    keysDeadline: now + phaseMs,
    sharesDeadline: now + 2 * phaseMs,
    input: {
      normBound: noise ? spec.privacy.clipNorm : spec.aggregation.normBound,
      noise: noise ? { variance: deviceVariance, minSurvivors: noise.minSurvivors } : null,
    },
  };
}

/**
 * The mean update a round's unmasked sum stands for, and the next round's clips. Distributed
 * DP: the signed noised levels summed over the expected cohort (a fixed denominator, as
 * central DP uses), clips unchanged. Otherwise the sample-weighted mean, and clips adapted
 * from the summed rms statistic.
 */
function readSum(sum: RingVector, config: SecureRoundConfig, survivors: readonly number[], spec: TaskSpec, lengths: number[], noise: DistributedNoise | undefined): { mean: Weights; clips: number[] } {
  if (noise) {
    // Clients refuse to unmask fewer; a sum that got through anyway is not published.
    if (survivors.length < noise.minSurvivors) throw new TributaryError('SECAGG_TOO_FEW_SHARES', `${survivors.length} survivors carry less noise than distributed DP needs (${noise.minSurvivors})`);
    return { mean: decodeDistributedSum(sum, { lengths, ringBits: config.ringBits, step: noise.params.step, denominator: spec.clientsPerRound }), clips: config.clips };
  }
  const meanSamples = config.participants.reduce((a, p) => a + p.samples, 0) / config.participants.length;
  const samples = survivors.reduce((a, u) => a + config.participants[u]!.samples, 0);
  const bits = spec.bits as Exclude<TaskSpec['bits'], 32>;
  const reading = decodeSecureSum(sum, { bits, clips: config.clips, lengths, survivors: survivors.length, weight: samples / meanSamples });
  return { mean: reading.mean, clips: nextClips(config.clips, reading.rmsRatio, spec.clipSigma) };
}

/** Each phase around the upload takes at most this long. */
const phaseDuration = (spec: TaskSpec) => Math.min(SECURE_PHASE_MS, spec.roundDeadlineMs / 4);

/**
 * A secure round (SecAgg+): the server sees masked vectors only and learns their sum.
 * Clients pre-scale by samples, so the sum divided by the survivors' weight is FedAvg;
 * the survivors' summed rms statistic sets the next round's clips.
 */
export async function runMaskedRound(run: RoundRun): Promise<Contribution> {
  const { task, global, plan, options, evaluation } = run;
  const { spec, id } = task;
  const { participants, round } = plan;
  const metricSums = evaluation?.sums ?? 0;
  const now = Date.now();
  const deadline = now + spec.roundDeadlineMs;
  const noise = global.privacy?.distributed;
  const config = secureRoundConfig(spec, plan, [...global.clips], now, noise);
  const aggregator = generateBoxKeyPair();
  // The model's levels, then the evaluators' metric sums as limbs: the server learns only their totals too.
  const modelLength = secureInputLength(global.lengths);
  const inputLength = modelLength + metricLimbsLength(metricSums, spec.bits);
  const protocol = new SecureRound({ config, context: roundContext(id, round, aggregator.publicKey), inputLength, phaseMs: phaseDuration(spec), unmask: options.unmask });
  // Every byte a participant sends this round counts: keys and shares as well as its upload.
  const startBytes = participants.map((p) => p.wireBytes());
  let rejected = 0;
  let participantsDetail: ParticipantRecord[] | undefined;
  run.runProtocol(protocol);
  try {
    run.announce(roundBase(task, options.chunkBytes, round, deadline, aggregator, config, metricSums));
    const { sum, survivors, unmaskMs, forgers, excluded } = await protocol.run(async (sharers) => {
      const collected = await run.collect({
        uploaders: sharers.map((i) => participants[i]!),
        deadline,
        maxBytes: SEAL_OVERHEAD_BYTES + PARTNERS_SIGNATURE_BYTES + ringWireBytes(inputLength, config.ringBits),
        // Folded into the masked sum on arrival (or left out, if signed for other partners).
        decode: (bytes, { clientId }) => {
          const { partnersSignature, ring } = decodeMaskedUpload(openSealed(bytes, aggregator));
          return protocol.admit(protocol.indexFor(clientId), { partnersSignature, masked: decodeRing(ring, config.ringBits, inputLength) });
        },
      });
      rejected = collected.rejected.length;
      participantsDetail = run.account(collected);
    });
    if (forgers.length > 0 || excluded.length > 0) {
      const ids = (list: number[]) => list.map((i) => participants[i]!.id);
      options.log.warn({ taskId: id, round, forgers: ids(forgers), excluded: ids(excluded) }, 'participants misbehaved: forged shares left out of the reconstruction, uploads signed for other partners left out of the sum');
    }
    const decodeStarted = performance.now();
    const samples = survivors.reduce((a, u) => a + weightOf(plan, participants[u]!), 0);
    const { mean, clips } = readSum(sum.subarray(0, modelLength), config, survivors, spec, global.lengths, noise);
    const evaluators = evaluation ? survivors.filter((u) => evaluation.evaluators.has(participants[u]!.id)).length : 0;
    const federated = evaluation ? federatedMetrics(spec, global.version, evaluators, decodeMetricLimbs(sum.subarray(modelLength), metricSums, spec.bits)) : null;
    options.log.debug({ taskId: id, round, clips, ringBits: config.ringBits }, 'secure round unmasked');
    return {
      input: { mean },
      clips,
      federated,
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
