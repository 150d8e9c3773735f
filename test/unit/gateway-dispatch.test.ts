import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { ClientSession } from '../../server/gateway/clients.ts';
import { EventDispatcher, type Caller, type EventAccess, type EventHandlers } from '../../server/gateway/dispatcher.ts';
import { CLIENT_EVENT_ACCESS } from '../../server/gateway/gateway.ts';
import { TributaryError, type ErrorBody } from '../../shared/errors.ts';
import type { Reply } from '../../shared/protocol/events.ts';

/** The dispatcher alone, with a stand-in connection: its access table is what lets a message reach a handler. */

class FakeCaller implements Caller {
  readonly errors: ErrorBody[] = [];
  budget = Infinity;

  constructor(public session: ClientSession | undefined = undefined) {}

  spendMessage(): void {
    if (this.budget-- <= 0) throw new TributaryError('RATE_LIMITED');
  }

  reportError(error: ErrorBody): void {
    this.errors.push(error);
  }
}

const sessionOf = (taskId: number) =>
  new ClientSession({ id: `client-${taskId}`, taskId, kind: 'edge', identityKey: new Uint8Array(32), shard: null, resumeToken: new Uint8Array(32) });

/** A handler per event that records its call and answers what its ack type allows. */
function spyHandlers() {
  return {
    'auth:challenge': vi.fn(() => ({ nonce: new Uint8Array(32) })),
    'task:join': vi.fn((): never => { throw new TributaryError('NOT_ENROLLED'); }),
    'client:ready': vi.fn((_request, { session }: { session: ClientSession }) => ({ selected: session.taskId === 1 })),
    'update:chunk': vi.fn(() => ({ next: 1, complete: false })),
    'secagg:advertise': vi.fn(() => ({ advertised: new Uint8Array(0) })),
    'secagg:share': vi.fn(() => ({ boxes: new Uint8Array(0), sharers: [] })),
    'secagg:survivors': vi.fn(() => ({ survivors: [] })),
    'secagg:confirm': vi.fn(() => ({ confirmations: new Uint8Array(0) })),
    'secagg:reveal': vi.fn(() => ({ accepted: true as const })),
  };
}

const log = pino({ level: 'silent' });
const dispatcherOf = (handlers: ReturnType<typeof spyHandlers>, access: EventAccess = CLIENT_EVENT_ACCESS) =>
  new EventDispatcher<FakeCaller, EventAccess>(handlers as unknown as EventHandlers<FakeCaller, EventAccess>, access, log);

/** One message with an ack, as socket.io would deliver it; resolves with the ack's reply. */
const send = (dispatcher: EventDispatcher<FakeCaller, EventAccess>, caller: FakeCaller, event: string, ...args: unknown[]) =>
  new Promise<Reply<unknown>>((resolve) => void dispatcher.receive(caller, event, [...args, resolve]));

const ready = (taskId: number) => ({ taskId, samples: 10, backend: 'cpu', cachedVersion: -1 });

describe('gateway dispatcher', () => {
  it('refuses, at attach time, a handler whose event has no access rule', () => {
    const { 'client:ready': _forgotten, ...access } = CLIENT_EVENT_ACCESS;
    expect(() => dispatcherOf(spyHandlers(), access as EventAccess)).toThrow('client event client:ready has no access rule');
  });

  it('refuses an access rule it does not know, rather than letting the event through', () => {
    const access = { ...CLIENT_EVENT_ACCESS, 'update:chunk': 'operator' } as unknown as EventAccess;
    expect(() => dispatcherOf(spyHandlers(), access)).toThrow('client event update:chunk has no access rule');
  });

  it("refuses a 'joined' rule on an event whose payload names no task", () => {
    const access = { ...CLIENT_EVENT_ACCESS, 'auth:challenge': 'joined' } as const;
    expect(() => dispatcherOf(spyHandlers(), access)).toThrow("client event auth:challenge is 'joined', but its payload has no taskId");
  });

  it("refuses an 'enrolled' rule on an event whose payload carries no proof, which would let anyone in", () => {
    const access = { ...CLIENT_EVENT_ACCESS, 'client:ready': 'enrolled' } as const;
    expect(() => dispatcherOf(spyHandlers(), access)).toThrow("client event client:ready is 'enrolled', but its payload has no proof");
  });

  it('refuses a rule for an event nobody handles', () => {
    const { 'secagg:reveal': _missing, ...handlers } = spyHandlers();
    expect(() => dispatcherOf(handlers as ReturnType<typeof spyHandlers>)).toThrow('client events with a rule but no handler: secagg:reveal');
  });

  it('answers a joined event from an unjoined caller with NOT_JOINED, and never calls its handler', async () => {
    const handlers = spyHandlers();
    const reply = await send(dispatcherOf(handlers), new FakeCaller(), 'client:ready', ready(1));
    expect(reply).toMatchObject({ ok: false, error: { code: 'NOT_JOINED' } });
    expect(handlers['client:ready']).not.toHaveBeenCalled();
  });

  it('answers a joined event about another task with NOT_JOINED, and never calls its handler', async () => {
    const handlers = spyHandlers();
    const reply = await send(dispatcherOf(handlers), new FakeCaller(sessionOf(1)), 'update:chunk', { taskId: 2, round: 1, index: 0, count: 1, totalBytes: 8, samples: 1, attempt: '0000000000000000' }, new Uint8Array(8));
    expect(reply).toMatchObject({ ok: false, error: { code: 'NOT_JOINED' } });
    expect(handlers['update:chunk']).not.toHaveBeenCalled();
  });

  it('hands a joined event its session and acks the handler value', async () => {
    const handlers = spyHandlers();
    const session = sessionOf(1);
    const reply = await send(dispatcherOf(handlers), new FakeCaller(session), 'client:ready', ready(1));
    expect(reply).toEqual({ ok: true, value: { selected: true } });
    expect(handlers['client:ready'].mock.calls[0]?.[1]).toMatchObject({ session });
  });

  it('lets anyone connected send a connected event', async () => {
    expect(await send(dispatcherOf(spyHandlers()), new FakeCaller(), 'auth:challenge', {})).toMatchObject({ ok: true });
  });

  it('checks the payload against its schema before the access rule and the handler', async () => {
    const handlers = spyHandlers();
    const reply = await send(dispatcherOf(handlers), new FakeCaller(), 'client:ready', { taskId: 1, samples: 'many' });
    expect(reply).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
    expect(handlers['client:ready']).not.toHaveBeenCalled();
  });

  it('answers unknown events with BAD_REQUEST, without spending the budget', async () => {
    const caller = new FakeCaller();
    caller.budget = 0;
    for (const event of ['round:start', 'constructor', '__proto__', '']) {
      expect(await send(dispatcherOf(spyHandlers()), caller, event, {})).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
    }
    expect(await send(dispatcherOf(spyHandlers()), caller, 'auth:challenge', {})).toMatchObject({ ok: false, error: { code: 'RATE_LIMITED' } });
  });

  it('answers a message without an ack through server:error, and a handler failure as INTERNAL', async () => {
    const handlers = spyHandlers();
    handlers['auth:challenge'].mockImplementation(() => { throw new Error('secret internals'); });
    const caller = new FakeCaller();
    const dispatcher = dispatcherOf(handlers);
    await dispatcher.receive(caller, 'client:ready', [ready(1)]);
    await dispatcher.receive(caller, 'auth:challenge', [{}]);
    expect(caller.errors.map((e) => e.code)).toEqual(['NOT_JOINED', 'INTERNAL']);
    expect(caller.errors[1]!.message).not.toContain('secret');
  });
});
