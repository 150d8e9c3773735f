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

/** A cluster round's group: its ring holds the whole cohort's sum, and its weights share one scale. */
export interface CohortShape {
  /** Participants across every process's group. */
  cohort: number;
  sampleScale: number;
  /** When every group's collection ends, ms since epoch. */
  deadline: number;
}

/**
 * The secure part of a round's config: participants, graph, threshold, ring, clips, what
 * devices do to their inputs, and key-phase deadlines. Under distributed DP every device
 * weighs 1 (a sample count would unbound one user's influence), quantizes with the
 * budget's range, and adds its share of the noise; the ring widens to hold the noise.
 * A cluster round's group (`shape`) sizes the ring for the whole cohort and weighs with the
 * cohort's scale, so the groups' unmasked sums add up.
 */
export function secureRoundConfig(spec: TaskSpec, plan: RoundPlan, clips: number[], now: number, noise?: DistributedNoise, shape?: CohortShape): SecureRoundConfig {
  const { participants } = plan;
  const n = participants.length;
  const { neighbours, threshold } = secureParameters(n, spec.neighbours, spec.threshold);
  const phaseMs = phaseDuration(spec);
  const bits = spec.bits as Exclude<TaskSpec['bits'], 32>;
  const deviceVariance = noise ? noise.variance / noise.minSurvivors : 0;
  const weights = participants.map((p) => (noise ? 1 : weightOf(plan, p)));
  return {
    participants: participants.map((p, i) => ({ clientId: p.id, samples: weights[i]! })),
    identityKeys: concatBytes(...participants.map((p) => p.identityKey)),
    neighbours,
    threshold,
    ringBits: noise ? distributedRingBits(bits, n, deviceVariance) : ringBits(bits, shape?.cohort ?? n),
    graphSeed: randomBytes(32),
    clips: noise ? clips.map(() => noise.params.clip) : clips,
    sampleScale: noise ? 1 : shape?.sampleScale ?? weights.reduce((a, w) => a + w, 0) / n,
    keysDeadline: now + phaseMs,
    sharesDeadline: now + 2 * phaseMs,
    input: {
      normBound: noise ? spec.privacy.clipNorm : spec.aggregation.normBound,
      noise: noise ? { variance: deviceVariance, minSurvivors: noise.minSurvivors } : null,
    },
  };
}

/** What a secure sum stands for: `survivors` inputs weighing `samples` in all. */
export interface SecureTotals {
  survivors: number;
  samples: number;
}

/**
 * The mean update a round's unmasked sum (its model part) stands for, and the next
 * round's clips. Distributed DP: the signed noised levels summed over the expected cohort
 * (a fixed denominator, as central DP uses), clips unchanged. Otherwise the sample-weighted
 * mean, and clips adapted from the summed rms statistic.
 */
export function readSecureSum(sum: RingVector, config: Pick<SecureRoundConfig, 'ringBits' | 'clips' | 'sampleScale'>, totals: SecureTotals, spec: TaskSpec, lengths: number[], noise: DistributedNoise | undefined): { mean: Weights; clips: number[] } {
  if (noise) {
    // Clients refuse to unmask fewer; a sum that got through anyway is not published.
    if (totals.survivors < noise.minSurvivors) throw new TributaryError('SECAGG_TOO_FEW_SHARES', `${totals.survivors} survivors carry less noise than distributed DP needs (${noise.minSurvivors})`);
    return { mean: decodeDistributedSum(sum, { lengths, ringBits: config.ringBits, step: noise.params.step, denominator: spec.clientsPerRound }), clips: config.clips };
  }
  const bits = spec.bits as Exclude<TaskSpec['bits'], 32>;
  const reading = decodeSecureSum(sum, { bits, clips: config.clips, lengths, survivors: totals.survivors, weight: totals.samples / config.sampleScale });
  return { mean: reading.mean, clips: nextClips(config.clips, reading.rmsRatio, spec.clipSigma) };
}

/** Each phase around the upload takes at most this long. */
const phaseDuration = (spec: TaskSpec) => Math.min(SECURE_PHASE_MS, spec.roundDeadlineMs / 4);

/** A secure round's unmasked sum (model levels, then metric limbs) and what the round's record needs of it. */
export interface UnmaskedRound extends SecureTotals {
  sum: RingVector;
  config: SecureRoundConfig;
  /** Words of the model's levels at the start of `sum`; metric limbs follow. */
  modelLength: number;
  metricSums: number;
  /** Survivors that evaluated the sent model (their metric limbs are in the sum). */
  evaluators: number;
  dropped: number;
  rejected: number;
  uploadBytes: number;
  unmaskMs: number;
  participantsDetail: ParticipantRecord[];
}

/**
 * Runs SecAgg+ with the round's participants: the server sees masked vectors only and
 * learns their sum. Clients pre-scale by samples / sampleScale, so the sum divided by the
 * survivors' weight is FedAvg. `shape`: this is one process's group of a cluster round.
 */
export async function runSecureSum(run: RoundRun, shape?: CohortShape): Promise<UnmaskedRound> {
  const { task, global, plan, options, evaluation } = run;
  const { spec, id } = task;
  const { participants, round } = plan;
  const metricSums = evaluation?.sums ?? 0;
  const now = Date.now();
  const deadline = shape?.deadline ?? now + spec.roundDeadlineMs;
  const config = secureRoundConfig(spec, plan, [...global.clips], now, global.privacy?.distributed, shape);
  const aggregator = generateBoxKeyPair();
  // The model's levels, then the evaluators' metric sums as limbs: the server learns only their totals too.
  const modelLength = secureInputLength(global.lengths);
  const inputLength = modelLength + metricLimbsLength(metricSums, spec.bits);
  const protocol = new SecureRound({ config, context: roundContext(id, round, aggregator.publicKey), inputLength, phaseMs: phaseDuration(spec), unmask: options.unmask });
  // Every byte a participant sends this round counts: keys and shares as well as its upload.
  const startBytes = participants.map((p) => p.wireBytes());
  let rejected = 0;
  let participantsDetail: ParticipantRecord[] = [];
  run.runProtocol(protocol);
  try {
    run.announce(roundBase(task, options.chunkBytes, round, deadline, aggregator, config, metricSums));
    const { sum, survivors, unmaskMs, forgers, excluded } = await protocol.run(async (sharers) => {
      const collected = await run.collect({
        aggregatorKey: aggregator.publicKey,
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
    return {
      sum,
      config,
      modelLength,
      metricSums,
      survivors: survivors.length,
      samples: survivors.reduce((a, u) => a + weightOf(plan, participants[u]!), 0),
      evaluators: evaluation ? survivors.filter((u) => evaluation.evaluators.has(participants[u]!.id)).length : 0,
      dropped: participants.length - survivors.length - rejected - excluded.length,
      rejected: rejected + excluded.length,
      uploadBytes: survivors.reduce((a, u) => a + participants[u]!.wireBytes() - startBytes[u]!, 0),
      unmaskMs,
      participantsDetail,
    };
  } finally {
    run.runProtocol(undefined);
  }
}

/** A secure round on one process: its unmasked sum read as the mean update; the survivors' summed rms statistic sets the next round's clips. */
export async function runMaskedRound(run: RoundRun): Promise<Contribution> {
  const { task, global, options } = run;
  const { spec, id } = task;
  const unmasked = await runSecureSum(run);
  const { sum, config, modelLength, metricSums } = unmasked;
  const decodeStarted = performance.now();
  const { mean, clips } = readSecureSum(sum.subarray(0, modelLength), config, unmasked, spec, global.lengths, global.privacy?.distributed);
  const federated = run.evaluation ? federatedMetrics(spec, global.version, unmasked.evaluators, decodeMetricLimbs(sum.subarray(modelLength), metricSums, spec.bits)) : null;
  options.log.debug({ taskId: id, round: run.plan.round, clips, ringBits: config.ringBits }, 'secure round unmasked');
  return {
    input: { mean },
    clips,
    federated,
    aggregationMs: unmasked.unmaskMs + performance.now() - decodeStarted,
    participants: unmasked.survivors,
    dropped: unmasked.dropped,
    late: 0,
    rejected: unmasked.rejected,
    samples: unmasked.samples,
    uploadBytes: unmasked.uploadBytes,
    staleness: 0,
    startedAt: run.startedAt,
    participantsDetail: unmasked.participantsDetail,
  };
}
