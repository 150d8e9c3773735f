import { io, type ManagerOptions, type SocketOptions } from 'socket.io-client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cryptoReady, generateSigningKeyPair, sign, type KeyPair } from '../../shared/crypto/sodium.ts';
import type { ErrorBody } from '../../shared/errors.ts';
import { joinProofMessage, type JoinReply } from '../../shared/protocol/events.ts';
import { startHarness, type Harness, type RawSocket } from '../support/harness.ts';

/** One live session per device and task; connections and messages limited per address, not only per socket. */

let h: Harness | undefined;
beforeAll(cryptoReady);
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const connect = (url: string, options: Partial<ManagerOptions & SocketOptions> = {}): RawSocket => io(url, { transports: ['websocket'], forceNew: true, ...options });

/** A join on a new socket with a given identity (and resume token): what a second tab or a replayed device does. */
async function joinAs(url: string, taskId: number, identity: KeyPair, resume?: { clientId: string; token: Uint8Array }): Promise<{ socket: RawSocket; joined: JoinReply }> {
  const socket = connect(url);
  const challenge = await socket.emitWithAck('auth:challenge', {});
  if (!challenge.ok) throw new Error(challenge.error.message);
  const proof = sign(joinProofMessage(new Uint8Array(challenge.value.nonce), taskId, 'edge'), identity.secretKey);
  const reply = await socket.emitWithAck('task:join', { taskId, kind: 'edge', proof, identityKey: identity.publicKey, ...(resume ? { resume } : {}) });
  if (!reply.ok) throw new Error(reply.error.message);
  return { socket, joined: reply.value };
}

function told(socket: RawSocket): Promise<{ error: ErrorBody; reason: string }> {
  return new Promise((resolve) => socket.once('server:error', (error) => socket.once('disconnect', (reason) => resolve({ error, reason }))));
}

const outcome = (socket: RawSocket) => new Promise<string>((resolve) => {
  socket.once('connect', () => resolve('connected'));
  socket.once('connect_error', (e: Error & { data?: { code?: string } }) => resolve(e.data?.code ?? e.message));
});

describe('sessions per identity key', () => {
  it('holds one session per key: a join without the resume token takes it over and closes the socket that held it', async () => {
    h = await startHarness();
    const task = await h.createTask({ name: 'one key, many sockets' });
    const device = generateSigningKeyPair();
    await h.enroll(task.id, device.publicKey);
    const holders: Array<{ socket: RawSocket; joined: JoinReply }> = [];
    const drops: Array<Promise<{ error: ErrorBody; reason: string }>> = [];
    for (let i = 0; i < 5; i++) {
      if (holders.length > 0) drops.push(told(holders.at(-1)!.socket));
      holders.push(await joinAs(h.url, task.id, device));
    }
    const listed = (await h.asAdmin({ url: `/api/tasks/${task.id}/clients` })).json() as Array<{ id: string }>;
    expect(listed.map((c) => c.id)).toEqual([holders.at(-1)!.joined.clientId]);
    for (const drop of await Promise.all(drops)) expect(drop).toEqual({ error: expect.objectContaining({ code: 'SESSION_REPLACED' }), reason: 'io server disconnect' });

    // With its resume token, a new socket takes the session back, even from a socket the server still thinks is live.
    const last = holders.at(-1)!;
    const replaced = told(last.socket);
    const back = await joinAs(h.url, task.id, device, { clientId: last.joined.clientId, token: new Uint8Array(last.joined.resumeToken) });
    expect(back.joined).toMatchObject({ resumed: true, clientId: last.joined.clientId });
    expect((await replaced).error.code).toBe('SESSION_REPLACED');
    back.socket.disconnect();
  });
});

describe('limits per address', () => {
  it('refuses a connection past the cap with RATE_LIMITED in connect_error data, and not other addresses', async () => {
    h = await startHarness({ addressLimits: { connections: 3, perSecond: 1_000, burst: 1_000 } });
    const open = [connect(h.url), connect(h.url), connect(h.url)];
    expect(await Promise.all(open.map(outcome))).toEqual(['connected', 'connected', 'connected']);
    const fourth = connect(h.url);
    expect(await outcome(fourth)).toBe('RATE_LIMITED');
    const elsewhere = connect(h.url, { localAddress: '127.0.0.2' } as Partial<ManagerOptions>);
    expect(await outcome(elsewhere)).toBe('connected');

    for (const socket of [fourth, elsewhere, open[0]!]) socket.close();
    await h.waitFor(async () => h!.app.io.engine.clientsCount === 2);
    const again = connect(h.url);
    expect(await outcome(again)).toBe('connected');
    for (const socket of [...open, again]) socket.close();
  });

  it('counts the forwarded address behind a trusted proxy', async () => {
    h = await startHarness({ trustProxy: ['loopback'], addressLimits: { connections: 1, perSecond: 1_000, burst: 1_000 } });
    const from = (address: string) => connect(h!.url, { extraHeaders: { 'x-forwarded-for': address } });
    const sockets = [from('203.0.113.1'), from('203.0.113.2')];
    expect(await Promise.all(sockets.map(outcome))).toEqual(['connected', 'connected']);
    sockets.push(from('203.0.113.1'));
    expect(await outcome(sockets[2]!)).toBe('RATE_LIMITED');
    for (const socket of sockets) socket.close();
  });

  it('shares one message budget among all the sockets of an address, and keeps it across reconnects', async () => {
    // No refill to speak of, so the counts are exact: the address's 300 messages, however many sockets ask.
    h = await startHarness({ addressLimits: { connections: 64, perSecond: 0.001, burst: 300 } });
    const sockets = Array.from({ length: 5 }, () => connect(h!.url));
    // 180 each: within every socket's own burst of 200.
    const replies = await Promise.all(sockets.flatMap((socket) => Array.from({ length: 180 }, () => socket.emitWithAck('auth:challenge', {}))));
    const limited = replies.filter((r) => !r.ok && r.error.code === 'RATE_LIMITED').length;
    expect(replies.length - limited).toBe(300);

    for (const socket of sockets) socket.close();
    await h.waitFor(async () => h!.app.io.engine.clientsCount === 0);
    const fresh = connect(h.url);
    expect(await fresh.emitWithAck('auth:challenge', {})).toMatchObject({ ok: false, error: { code: 'RATE_LIMITED' } });
    fresh.close();
  });
});

describe('heartbeats', () => {
  it('hands clients the heartbeat timeout the server was started with, so both ends wait as long', async () => {
    h = await startHarness({ heartbeatTimeoutMs: 47_000 });
    const socket = connect(h.url);
    const handshake = await new Promise<{ pingTimeout: number; pingInterval: number }>((resolve) => socket.io.engine.once('handshake', resolve));
    socket.close();
    expect(handshake).toMatchObject({ pingTimeout: 47_000, pingInterval: 25_000 });
  });
});
