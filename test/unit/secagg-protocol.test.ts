import { beforeAll, describe, expect, it } from 'vitest';
import { concatBytes, cryptoReady, generateBoxKeyPair, generateSigningKeyPair, randomBytes, type KeyPair } from '../../shared/crypto/sodium.ts';
import { expandSeed } from '../../shared/secagg/mask-stream.ts';
import { createRng, deriveSeed, shuffleInPlace } from '../../shared/random.ts';
import { ringBits } from '../../shared/secagg/ring.ts';
import { SecAggClient } from '../../shared/secagg/client.ts';
import { packIndexed, roundContext, signAdvertisement, unpackAdvertised, unpackConfirmations, unpackIndexed, SHARE_BYTES, type SecureRoundConfig } from '../../shared/secagg/protocol.ts';
import { secureParameters } from '../../shared/secagg/parameters.ts';
import { sumLevels } from '../../shared/secagg/math.ts';
import { runUnmaskJob } from '../../shared/secagg/unmask.ts';
import { SecureRound, type MaskedUpload } from '../../server/secagg/secure-round.ts';
import { neighboursForDropouts } from '../support/secagg-sim.ts';
import { expectCode } from '../support/expect-code.ts';

/**
 * The SecAgg+ protocol as the product runs it, minus the sockets: real SecAggClient state
 * machines talk to a real SecureRound through exactly the messages the gateway carries.
 */

const BITS = 8;
const M = 1_000;

type DropPhase = 'after-advertise' | 'after-share' | 'after-upload';

interface Party {
  id: string;
  identity: KeyPair;
  client: SecAggClient;
  levels: Uint32Array;
}

function levelsFor(seed: number, index: number): Uint32Array {
  const rng = createRng(deriveSeed('protocol-levels', seed, index));
  return Uint32Array.from({ length: M }, () => rng.nextUint32() >>> (32 - BITS));
}

function setUp(n: number, seed: number, options: { threshold?: number; neighbours?: number; taskId?: number; round?: number } = {}) {
  const identities = Array.from({ length: n }, () => generateSigningKeyPair());
  const { neighbours, threshold } = secureParameters(n, options.neighbours ?? 0, options.threshold ?? 0);
  const far = Date.now() + 60_000;
  const config: SecureRoundConfig = {
    participants: identities.map((_, i) => ({ clientId: `client-${i}`, samples: 100 })),
    identityKeys: concatBytes(...identities.map((k) => k.publicKey)),
    neighbours,
    threshold,
    ringBits: ringBits(BITS, n),
    graphSeed: randomBytes(32),
    clips: [0.1],
    sampleScale: 100,
    keysDeadline: far,
    sharesDeadline: far,
    input: { normBound: 0, noise: null },
  };
  const context = roundContext(options.taskId ?? 1, options.round ?? 1, generateBoxKeyPair().publicKey);
  const server = new SecureRound({ config, context, inputLength: M, phaseMs: 60_000, unmask: (job, sum) => runUnmaskJob(job, sum, expandSeed) });
  const parties: Party[] = identities.map((identity, i) => ({
    id: `client-${i}`,
    identity,
    client: new SecAggClient(config, context, i, identity),
    levels: levelsFor(seed, i),
  }));
  return { config, context, server, parties };
}

function pickDropped(n: number, fraction: number, seed: number): Set<number> {
  const order = shuffleInPlace(Array.from({ length: n }, (_, i) => i), createRng(deriveSeed('protocol-drops', seed, n)));
  return new Set(order.slice(0, Math.round(fraction * n)));
}

/**
 * Runs one round; clients in `dropped` vanish at `phase` (the server is told, as a
 * disconnect would). Resolves with the unmasked sum and who survived.
 */
async function runRound(setup: ReturnType<typeof setUp>, dropped: Set<number>, phase: DropPhase, tamperReveal = (packed: Uint8Array) => packed) {
  const { server, parties, config } = setup;
  const uploads = new Map<number, MaskedUpload>();
  let releaseUploads!: () => void;
  const uploadsDone = new Promise<void>((resolve) => (releaseUploads = resolve));
  const outcome = server.run(async () => {
    await uploadsDone;
    for (const [index, upload] of uploads) server.admit(index, upload);
  });
  const gone = (i: number) => server.drop(parties[i]!.id);

  // A client that refuses what it is shown leaves the round, as a drop-out would.
  const refused = new Set<number>();
  const clientRuns = parties.map(async (party, i) => {
    const { index: _index, ...request } = party.client.advertise();
    const advertising = server.advertise(party.id, { taskId: 1, round: 1, ...request });
    if (dropped.has(i) && phase === 'after-advertise') return gone(i);
    const advertised = await advertising;
    const boxes = await party.client.share(unpackAdvertised(advertised));
    const relaying = server.share(party.id, boxes);
    if (dropped.has(i) && phase === 'after-share') return gone(i);
    party.client.receive(await relaying);
    const masked = party.client.mask(party.levels, expandSeed);
    uploads.set(i, { masked, partnersSignature: party.client.partnersSignature() });
    if (dropped.has(i) && phase === 'after-upload') return gone(i);
    const survivors = await server.survivorsFor(party.id);
    const { confirmations, partners } = await server.confirm(party.id, party.client.confirm(survivors));
    const shares = party.client.reveal(unpackConfirmations(confirmations), unpackConfirmations(partners));
    server.reveal(party.id, i === 0 ? tamperReveal(shares) : shares);
  }).map((run, i) => run.catch((error: unknown) => {
    if ((error as { code?: string }).code !== 'SECAGG_UNSAFE_VIEW') throw error;
    refused.add(i);
    gone(i);
  }));
  // The upload phase ends once every client that shared has uploaded or vanished.
  const uploading = Promise.all(clientRuns.map((run) => run.catch(() => {})));
  void (async () => {
    for (;;) {
      const expected = parties.filter((_, i) => !(dropped.has(i) && phase !== 'after-upload') && !refused.has(i)).length;
      if (uploads.size >= expected) break;
      await new Promise((r) => setTimeout(r, 1));
    }
    releaseUploads();
  })();
  const result = await outcome;
  await uploading;
  return { ...result, expected: sumLevels(result.survivors.map((i) => parties[i]!.levels), config.ringBits) };
}

beforeAll(async () => {
  await cryptoReady();
});

describe('SecAgg+ protocol: client state machines against the server round', () => {
  for (const n of [3, 10, 50]) {
    for (const fraction of [0, 0.1, 0.3]) {
      for (const phase of ['after-advertise', 'after-share', 'after-upload'] as const) {
        if (fraction === 0 && phase !== 'after-advertise') continue; // no drop-outs: one case
        it(`n = ${n}, ${fraction * 100} % drop ${phase}: the unmasked sum equals the survivors' plain sum bit for bit`, async () => {
          // The task's k, chosen as an operator expecting this drop-out rate would: the fewest
          // neighbours for which the safe (default) threshold survives it.
          const neighbours = fraction > 0 ? neighboursForDropouts(n, fraction) : 0;
          const setup = setUp(n, n * 100 + fraction * 10, { neighbours });
          const dropped = pickDropped(n, fraction, n);
          const { sum, survivors, expected } = await runRound(setup, dropped, phase);
          const uploaded = phase === 'after-upload' ? n : n - dropped.size;
          expect(survivors.length).toBe(uploaded);
          expect(sum).toEqual(expected);
        });
      }
    }
  }

  it('aborts, failing every waiting client, when fewer than t clients survive to upload', async () => {
    const setup = setUp(5, 7); // k = 4, holders 5, t = 3
    expect(setup.config.threshold).toBe(3);
    await expect(runRound(setup, new Set([0, 1, 2]), 'after-share')).rejects.toMatchObject({ code: 'SECAGG_TOO_FEW_SHARES' });
  });

  it('a forged revealed share is caught against its owner\'s commitment, its revealer left out, and the round completes (finding 3)', async () => {
    for (const n of [5, 20]) {
      const setup = setUp(n, 3);
      const forge = (packed: Uint8Array) => {
        const shares = unpackIndexed(packed, SHARE_BYTES);
        for (const s of shares) s.bytes[10]! ^= 1; // every share client 0 reveals
        return packIndexed(shares, SHARE_BYTES);
      };
      const { sum, expected, forgers } = await runRound(setup, new Set(), 'after-upload', forge);
      expect(sum).toEqual(expected);
      expect(forgers).toEqual([0]);
    }
  });
});

/** Every party advertises and shares honestly; returns what the server relays to each. */
async function throughSharing(setup: ReturnType<typeof setUp>) {
  const { server, parties } = setup;
  void server.run(() => new Promise(() => {})).catch(() => {});
  const advertised = await Promise.all(parties.map((p) => {
    const { index: _index, ...keys } = p.client.advertise();
    return server.advertise(p.id, { taskId: 1, round: 1, ...keys });
  }));
  const boxes = await Promise.all(parties.map((p, i) => p.client.share(unpackAdvertised(advertised[i]!))));
  const relayed = await Promise.all(parties.map((p, i) => server.share(p.id, boxes[i]!)));
  return { advertised: advertised[0]!, relayed };
}

describe('SecAgg+ protocol: what a malicious server or client cannot do', () => {
  it('the server refuses round keys signed by anyone but the identity the client joined with', () => {
    const { server, parties, context } = setUp(3, 1);
    const { index, ...keys } = parties[0]!.client.advertise();
    const stranger = generateSigningKeyPair();
    const forged = signAdvertisement(context, { index, shareKey: keys.shareKey, maskKey: keys.maskKey, commitment: keys.commitment }, stranger.secretKey);
    expectCode(() => server.advertise(parties[0]!.id, { taskId: 1, round: 1, ...keys, signature: forged.signature }), 'SIGNATURE_INVALID');
  });

  it('a client refuses relayed keys its owner did not sign (a server substituting its own mask key)', async () => {
    const setup = setUp(3, 2);
    const { server, parties, context } = setup;
    void server.run(() => new Promise(() => {})).catch(() => {});
    const advertised = await Promise.all(parties.map((p) => {
      const { index: _index, ...keys } = p.client.advertise();
      return server.advertise(p.id, { taskId: 1, round: 1, ...keys });
    }));
    const list = unpackAdvertised(advertised[0]!);
    const attacker = generateBoxKeyPair();
    // Re-signed with a key the server controls: still not participant 1's identity.
    list[1] = signAdvertisement(context, { ...list[1]!, maskKey: attacker.publicKey }, generateSigningKeyPair().secretKey);
    await expect(parties[0]!.client.share(list)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
  });

  it('a relayed share altered by the server is rejected by its recipient', async () => {
    const setup = setUp(3, 3);
    const { relayed } = await throughSharing(setup);
    const tampered = new Uint8Array(relayed[0]!.boxes);
    tampered[tampered.length - 1]! ^= 0x01;
    expectCode(() => setup.parties[0]!.client.receive({ ...relayed[0]!, boxes: tampered }), 'DECRYPTION_FAILED');
  });

  it('messages replayed from an earlier round are rejected, by the server and by clients', async () => {
    const earlier = setUp(3, 5, { round: 1 });
    const { advertised } = await throughSharing(earlier);
    // Round 2 with the same participants and identities: a fresh aggregator key, so a fresh context.
    const laterContext = roundContext(1, 2, generateBoxKeyPair().publicKey);
    const later = new SecureRound({ config: earlier.config, context: laterContext, inputLength: M, phaseMs: 60_000, unmask: (job, sum) => runUnmaskJob(job, sum, expandSeed) });
    const replay = unpackAdvertised(advertised)[0]!;
    const { index: _index, ...replayed } = replay;
    expectCode(() => later.advertise(earlier.parties[0]!.id, { taskId: 1, round: 2, ...replayed }), 'SIGNATURE_INVALID');
    const client = new SecAggClient(earlier.config, laterContext, 0, earlier.parties[0]!.identity);
    client.advertise();
    await expect(client.share(unpackAdvertised(advertised))).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
  });

  it('a client reveals nothing until a quorum of the participants signed the same survivor list, and reveals once', async () => {
    const setup = setUp(4, 4); // t = 3
    const { relayed } = await throughSharing(setup);
    const party = setup.parties[0]!;
    party.client.receive(relayed[0]!);
    party.client.mask(party.levels, expandSeed);
    const survivors = [0, 1, 2, 3];
    const mine = party.client.confirm(survivors);
    // Only its own signature and a forged one: not a quorum of the participants.
    expectCode(() => party.client.reveal([{ index: 0, signature: mine }, { index: 1, signature: mine }], []), 'SECAGG_UNSAFE_VIEW');
    expectCode(() => party.client.reveal([], []), 'SECAGG_OUT_OF_PHASE');
  });
});
