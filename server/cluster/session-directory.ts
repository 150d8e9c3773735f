import { equalBytes, fromBase64, hash, toBase64 } from '../../shared/crypto/sodium.ts';
import type { ClientKind, JoinRequest } from '../../shared/protocol/events.ts';
import type { ClientSession, SessionInit } from '../gateway/clients.ts';
import { timed, type RedisClient } from './redis.ts';

/** A record outlives any process that could hold its session, and then goes. */
const RECORD_TTL_MS = 24 * 3_600_000;

interface SessionRecord {
  clientId: string;
  taskId: number;
  kind: ClientKind;
  identityKey: string;
  shard: number | null;
  /** The resume token's hash: whoever reads Redis still cannot take a session over. */
  tokenHash: string;
  /** The process holding the session now: only it may remove the record. */
  holder: string;
}

const key = (clientId: string) => `tributary:session:${clientId}`;
/** The session an identity key holds in a task, cluster-wide: a join anywhere replaces it. */
const identityIndex = (taskId: number, identityKey: Uint8Array) => `tributary:identity:${taskId}:${toBase64(hash(identityKey))}`;
const tokenHash = (token: Uint8Array) => toBase64(hash(token));

// Removes the record only if this process still holds the session (the client may have moved on).
const RELEASE = `
local value = redis.call('GET', KEYS[1])
if value and cjson.decode(value).holder == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/**
 * Where a client's session can be taken back in cluster mode: every process records the
 * sessions it holds in Redis, so a client whose process died (or that nginx sends to
 * another one after a reconnect) resumes there with its resume token: the same client id,
 * shard and identity, as a reconnect to the same process would. What was in the old
 * process's memory (its place in a round, a half-sent upload sealed to that process's key)
 * goes with it: that round counts the client as dropped.
 */
export class SessionDirectory {
  constructor(
    private readonly redis: RedisClient,
    /** This process (cluster processId). */
    private readonly holder: string,
  ) {}

  /**
   * Records that this process holds the session, and makes it its identity key's one
   * session in the task; returns the key's session before it, if another (which the caller
   * ends wherever it is, so that a device's weight never grows with the processes it joins).
   */
  async publish(session: ClientSession): Promise<string | undefined> {
    const record: SessionRecord = {
      clientId: session.id, taskId: session.taskId, kind: session.kind, identityKey: toBase64(session.identityKey),
      shard: session.shard, tokenHash: tokenHash(session.resumeToken), holder: this.holder,
    };
    const expiration = { type: 'PX', value: RECORD_TTL_MS } as const;
    await timed(this.redis.set(key(session.id), JSON.stringify(record), { expiration }));
    const before = await timed(this.redis.set(identityIndex(session.taskId, session.identityKey), session.id, { expiration, GET: true }));
    return before && before !== session.id ? String(before) : undefined;
  }

  /** The session a join's resume token takes back from another process, if the record, the task, the key and the token all match; REDIS_UNAVAILABLE if Redis does not answer. */
  async claim(request: JoinRequest, taskId: number): Promise<SessionInit | undefined> {
    const resume = request.resume;
    if (!resume) return undefined;
    const value = await timed(this.redis.get(key(resume.clientId)));
    if (!value) return undefined;
    const record = JSON.parse(value) as SessionRecord;
    const token = new Uint8Array(resume.token);
    if (record.taskId !== taskId || record.kind !== request.kind || !equalBytes(fromBase64(record.identityKey), new Uint8Array(request.identityKey))) return undefined;
    if (record.tokenHash !== tokenHash(token)) return undefined;
    return { id: record.clientId, taskId, kind: record.kind, identityKey: fromBase64(record.identityKey), shard: record.shard, resumeToken: token };
  }

  /** The session ended here: its record goes, unless another process has taken the session over since. */
  async release(clientId: string): Promise<void> {
    await timed(this.redis.eval(RELEASE, { keys: [key(clientId)], arguments: [this.holder] }));
  }
}
