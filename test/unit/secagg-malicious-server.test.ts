import { beforeAll, describe, expect, it } from 'vitest';
import { agreeSeed, boxPublicKey, concatBytes, cryptoReady, equalBytes, generateBoxKeyPair, generateSigningKeyPair, hash, randomBytes, type KeyPair } from '../../shared/crypto/sodium.ts';
import { withTaskDefaults } from '../../shared/protocol/task.ts';
import { createRng, deriveSeed } from '../../shared/random.ts';
import { SecAggClient } from '../../shared/secagg/client.ts';
import { expandSeed } from '../../shared/secagg/mask-stream.ts';
import { pairSign, unmaskSum } from '../../shared/secagg/math.ts';
import { packConfirmations, packIndexed, roundContext, roundGraph, SHARE_BOX_BYTES, SHARE_BYTES, unpackAdvertised, unpackConfirmations, unpackIndexed, packAdvertised, type AdvertisedKeys, type RelayedShares, type SecureRoundConfig } from '../../shared/secagg/protocol.ts';
import { secureParameters } from '../../shared/secagg/parameters.ts';
import { recoverSecret, type HeldShare } from '../../shared/secagg/recover.ts';
import { ringBits, type RingVector } from '../../shared/secagg/ring.ts';
import { expectCode } from '../support/expect-code.ts';

/**
 * A server that lies, against the unmodified client state machines (shared/secagg/client.ts):
 * the test is the server. It relays honestly or not, shows each client the survivor list and
 * the confirmations it likes, collects every share revealed to it, and then tries what the
 * attacks in docs/design.md ("Threat model") try: to remove every mask from one victim's
 * upload and read its input alone.
 */

const BITS = 8;
const M = 200;

interface Party {
  identity: KeyPair;
  client: SecAggClient;
  levels: Uint32Array;
  keys?: AdvertisedKeys;
  upload?: RingVector;
  /** Its signature over the partners it masked with, sent with its upload. */
  partners?: Uint8Array;
  list?: number[];
}

function levelsOf(seed: number, i: number): Uint32Array {
  const rng = createRng(deriveSeed('malicious-levels', seed, i));
  return Uint32Array.from({ length: M }, () => rng.nextUint32() >>> (32 - BITS));
}

/** One round as a lying server runs it, with n honest clients. */
class LyingServer {
  readonly config: SecureRoundConfig;
  readonly context: Uint8Array;
  readonly parties: Party[];
  readonly graph: number[][];
  private readonly inbox = new Map<number, Array<{ index: number; bytes: Uint8Array }>>();
  /** Every share revealed to the server, by owner, with the revealer's list (so which secret it is). */
  private readonly revealed: Array<{ holder: number; list: number[]; of: number; share: Uint8Array }> = [];

  constructor(readonly n: number, settings: { neighbours: number; threshold: number }, seed: number) {
    const identities = Array.from({ length: n }, () => generateSigningKeyPair());
    const { neighbours, threshold } = secureParameters(n, settings.neighbours, settings.threshold);
    this.config = {
      participants: identities.map((_, i) => ({ clientId: `c${i}`, samples: 1 })),
      identityKeys: concatBytes(...identities.map((k) => k.publicKey)),
      neighbours,
      threshold,
      ringBits: ringBits(BITS, n),
      graphSeed: randomBytes(32),
      clips: [1],
      sampleScale: 1,
      keysDeadline: 0,
      sharesDeadline: 0,
      input: { normBound: 0, noise: null },
    };
    this.context = roundContext(1, 1, generateBoxKeyPair().publicKey);
    this.graph = roundGraph(this.config);
    this.parties = identities.map((identity, i) => ({ identity, client: new SecAggClient(this.config, this.context, i, identity), levels: levelsOf(seed, i) }));
  }

  get t(): number {
    return this.config.threshold;
  }

  /** Advertise and share, honestly relayed: everyone sees every key and sends its boxes. */
  async share(): Promise<void> {
    for (const p of this.parties) p.keys = p.client.advertise();
    const advertised = packAdvertised(this.parties.map((p) => p.keys!));
    for (const [from, p] of this.parties.entries()) {
      for (const { index: to, bytes } of unpackIndexed(await p.client.share(unpackAdvertised(advertised)), SHARE_BOX_BYTES)) {
        if (!this.inbox.has(to)) this.inbox.set(to, []);
        this.inbox.get(to)!.push({ index: from, bytes });
      }
    }
  }

  /** What client i is told of the sharers: everyone but `hidden`, with the boxes of those it is told about. */
  relay(i: number, hidden: ReadonlySet<number> = new Set()): RelayedShares {
    const boxes = (this.inbox.get(i) ?? []).filter((b) => !hidden.has(b.index));
    return { sharers: this.parties.map((_, j) => j).filter((j) => !hidden.has(j)), boxes: packIndexed(boxes, SHARE_BOX_BYTES) };
  }

  /** Client i receives `relayed` and uploads its masked input. */
  mask(i: number, relayed: RelayedShares = this.relay(i)): void {
    const p = this.parties[i]!;
    p.client.receive(relayed);
    p.upload = p.client.mask(p.levels, expandSeed);
    p.partners = p.client.partnersSignature();
  }

  /**
   * Each group is shown its own survivor list and the confirmations of its own members only;
   * whoever is convinced reveals. Returns who revealed.
   */
  confirmAndReveal(groups: Array<{ members: number[]; list: number[] }>): number[] {
    const revealers: number[] = [];
    for (const { members, list } of groups) {
      const signatures = members.flatMap((i) => {
        try {
          return [{ index: i, signature: this.parties[i]!.client.confirm(list) }];
        } catch (error) {
          // A list too short to be confirmed, or naming clients this one was told did not share.
          expect(['SECAGG_TOO_FEW_SHARES', 'BAD_REQUEST']).toContain((error as { code: string }).code);
          return [];
        }
      });
      for (const i of members.filter((m) => signatures.some((s) => s.index === m))) {
        try {
          // The partner signatures of every uploader: all the server has to show.
          const partners = this.parties.flatMap((p, o) => (p.partners ? [{ index: o, signature: p.partners }] : []));
          const packed = this.parties[i]!.client.reveal(unpackConfirmations(packConfirmations(signatures)), partners);
          for (const { index: of, bytes: share } of unpackIndexed(packed, SHARE_BYTES)) this.revealed.push({ holder: i, list, of, share });
          revealers.push(i);
        } catch (error) {
          expect(error).toMatchObject({ code: 'SECAGG_UNSAFE_VIEW' });
        }
      }
    }
    return revealers;
  }

  /** Shares of `owner`'s self seed (revealed by holders that saw it survive) or of its mask key (saw it drop). */
  private sharesOf(owner: number, secret: 'selfSeed' | 'maskKey'): HeldShare[] {
    return this.revealed
      .filter((r) => r.of === owner && r.list.includes(owner) === (secret === 'selfSeed'))
      .map((r) => ({ from: r.holder, share: r.share }));
  }

  /**
   * The attack's last step: rebuild the victim's self seed and the mask key of every partner
   * it masked with, remove them all from its upload alone. Undefined if any secret is out of reach.
   */
  async unmaskAlone(victim: number, partners: readonly number[]): Promise<Uint32Array | undefined> {
    const v = this.parties[victim]!;
    if (!v.upload) return undefined;
    try {
      const { secret: selfSeed } = await recoverSecret(this.sharesOf(victim, 'selfSeed'), this.t, (s) => equalBytes(hash(s), v.keys!.commitment), 'victim seed');
      const pairs = [];
      for (const p of partners) {
        const keys = this.parties[p]!.keys!;
        const { secret: sk } = await recoverSecret(this.sharesOf(p, 'maskKey'), this.t, (s) => equalBytes(boxPublicKey(s), keys.maskKey), 'partner key');
        pairs.push({ seed: agreeSeed(sk, keys.maskKey, v.keys!.maskKey, this.context), sign: pairSign(victim, p) });
      }
      return Uint32Array.from(unmaskSum(v.upload, this.config.ringBits, [selfSeed], pairs, expandSeed));
    } catch {
      return undefined; // some secret is out of the server's reach
    }
  }

  /** Every share-holder of `owner` but itself, in graph order. */
  neighboursOf(owner: number): number[] {
    return [...this.graph[owner]!];
  }
}

const everyone = (n: number) => Array.from({ length: n }, (_, i) => i);
const SETTINGS = [
  { name: 'default settings', neighbours: 0, threshold: 0 },
  { name: 'the smallest allowed settings (k = 2, t = 2)', neighbours: 2, threshold: 2 },
] as const;

beforeAll(cryptoReady);

describe('SecAgg+ against a server that lies about who shared keys (finding 1)', () => {
  for (const n of [5, 20, 100]) {
    for (const settings of SETTINGS) {
      describe(`n = ${n}, ${settings.name}`, () => {
        it('a client told that only it shared refuses to mask', async () => {
          const server = new LyingServer(n, settings, n);
          await server.share();
          const victim = 0;
          const alone = { sharers: [victim], boxes: packIndexed([], SHARE_BOX_BYTES) };
          expectCode(() => server.mask(victim, alone), 'SECAGG_UNSAFE_VIEW');
        });

        it('a client refuses to mask when fewer than t − 1 of its neighbours are reported as sharing', async () => {
          const server = new LyingServer(n, settings, n + 1);
          await server.share();
          const victim = 0;
          const neighbours = server.neighboursOf(victim);
          const hidden = new Set(neighbours.slice(server.t - 2)); // t − 2 left
          expectCode(() => server.mask(victim, server.relay(victim, hidden)), 'SECAGG_UNSAFE_VIEW');
        });

        it('holders a client was told did not share refuse to reveal its self seed, so the server cannot unmask it alone', async () => {
          const server = new LyingServer(n, settings, n + 2);
          await server.share();
          const victim = 0;
          const neighbours = server.neighboursOf(victim);
          const hidden = new Set(neighbours.slice(server.t - 1)); // all but t − 1: as many as it accepts
          for (const i of everyone(n)) server.mask(i, i === victim ? server.relay(victim, hidden) : server.relay(i));
          // The best one list can do: the victim survived, every partner it masked with dropped,
          // and the hidden holders (who hold its shares, and did share) alive to reveal them.
          const partners = neighbours.filter((v) => !hidden.has(v));
          const list = everyone(n).filter((i) => !partners.includes(i));
          const revealers = server.confirmAndReveal([{ members: list, list }]);
          for (const h of hidden) expect(revealers).not.toContain(h);
          expect(await server.unmaskAlone(victim, partners)).toBeUndefined();
        });
      });
    }
  }
});

describe('SecAgg+ against a server that shows clients different survivor lists', () => {
  for (const n of [5, 20, 100]) {
    for (const settings of SETTINGS) {
      describe(`n = ${n}, ${settings.name}`, () => {
        it('two halves told different lists cannot both be convinced, so no client\'s two secrets are both revealed (finding 2)', async () => {
          const server = new LyingServer(n, settings, 2 * n);
          await server.share();
          for (const i of everyone(n)) server.mask(i);
          const victim = 0;
          const half = everyone(n).slice(0, Math.ceil(n / 2)); // the victim survived, to these
          const rest = everyone(n).slice(Math.ceil(n / 2)); // the victim dropped, to these
          const revealers = server.confirmAndReveal([
            { members: half, list: everyone(n) },
            { members: rest, list: everyone(n).filter((i) => i !== victim) },
          ]);
          const convinced = [half, rest].filter((group) => group.some((i) => revealers.includes(i)));
          expect(convinced.length).toBeLessThanOrEqual(1);
          expect(await server.unmaskAlone(victim, server.neighboursOf(victim))).toBeUndefined();
        });

        it('the victim\'s partners told it survived and everyone else told the partners dropped: the victim stays masked', async () => {
          const server = new LyingServer(n, settings, 3 * n);
          await server.share();
          for (const i of everyone(n)) server.mask(i);
          const victim = 0;
          const partners = server.neighboursOf(victim);
          const near = [victim, ...partners];
          const far = everyone(n).filter((i) => !near.includes(i));
          server.confirmAndReveal([
            { members: near, list: everyone(n) }, // they reveal the victim's self-seed shares
            { members: far, list: far }, // they reveal the partners' mask-key shares
          ]);
          expect(await server.unmaskAlone(victim, partners)).toBeUndefined();
        });
      });
    }
  }
});

describe('thresholds below the safe bound (finding 2)', () => {
  it('are refused when a round is planned, naming the bound', () => {
    expectCode(() => secureParameters(5, 4, 2), 'SECAGG_THRESHOLD_UNSAFE');
    expect(() => secureParameters(5, 4, 2)).toThrow(/t ≥ 3/);
    expect(secureParameters(5, 4, 3)).toEqual({ neighbours: 4, threshold: 3 });
  });

  it('are refused when a task is created', () => {
    expectCode(() => withTaskDefaults({ name: 'x', secure: true, threshold: 2, neighbours: 20, clientsPerRound: 30 }), 'SECAGG_THRESHOLD_UNSAFE');
    expect(withTaskDefaults({ name: 'x', secure: true, threshold: 11, neighbours: 20, clientsPerRound: 30 }).threshold).toBe(11);
  });

  it('are refused by a client handed such a round config', () => {
    const identity = generateSigningKeyPair();
    const others = Array.from({ length: 4 }, () => generateSigningKeyPair());
    const config: SecureRoundConfig = {
      participants: [identity, ...others].map((_, i) => ({ clientId: `c${i}`, samples: 1 })),
      identityKeys: concatBytes(identity.publicKey, ...others.map((k) => k.publicKey)),
      neighbours: 4,
      threshold: 2,
      ringBits: ringBits(BITS, 5),
      graphSeed: randomBytes(32),
      clips: [1],
      sampleScale: 1,
      keysDeadline: 0,
      sharesDeadline: 0,
      input: { normBound: 0, noise: null },
    };
    expectCode(() => new SecAggClient(config, roundContext(1, 1, generateBoxKeyPair().publicKey), 0, identity), 'SECAGG_THRESHOLD_UNSAFE');
  });
});
