import type { Logger } from 'pino';
import type { Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { TributaryError, toErrorBody, type ErrorBody } from '../../shared/errors.ts';
import { CLIENT_EVENT_SCHEMAS, type Ack, type ClientToServerEvents, type Reply } from '../../shared/protocol/events.ts';
import type { ClientSession } from './clients.ts';

export type ClientEvent = keyof ClientToServerEvents;
export type EventPayload<E extends ClientEvent> = Static<(typeof CLIENT_EVENT_SCHEMAS)[E]>;
/** What an event's ack carries when it succeeds. */
export type EventValue<E extends ClientEvent> = Parameters<ClientToServerEvents[E]> extends [...unknown[], Ack<infer T>] ? T : never;

/**
 * Who may send an event: anyone connected; a client proving an enrolled identity (its
 * payload carries the proof, which the handler checks against the connection's one-time
 * nonce and the enrollments); or a client joined to the task the payload names, whose
 * session the dispatcher looks up and hands to the handler.
 */
export type EventRule = 'connected' | 'enrolled' | 'joined';
export type EventAccess = Record<ClientEvent, EventRule>;

/** What the dispatcher needs of the connection a message came on. */
export interface Caller {
  /** The session this connection speaks for, if it joined. */
  readonly session: ClientSession | undefined;
  /** Spends one message of the connection's budget; throws RATE_LIMITED when it is spent. */
  spendMessage(): void;
  /** Answers a message that came without an ack. */
  reportError(error: ErrorBody): void;
}

export interface EventCall<C extends Caller> {
  caller: C;
  /** Arguments after the payload (an upload chunk's bytes). */
  extra: unknown[];
}

export interface JoinedCall<C extends Caller> extends EventCall<C> {
  /** The caller's session in the task the payload names. */
  session: ClientSession;
}

/** Each event's work, after its payload passed its schema and its caller passed its rule. */
export type EventHandlers<C extends Caller, A extends EventAccess> = {
  [E in ClientEvent]: (request: EventPayload<E>, call: A[E] extends 'joined' ? JoinedCall<C> : EventCall<C>) => EventValue<E> | Promise<EventValue<E>>;
};

/** How each rule admits a validated payload: for 'joined', the session it may act for. */
const admit: Record<EventRule, (caller: Caller, request: unknown) => ClientSession | undefined> = {
  connected: () => undefined,
  // The proof is only as good as its check, which needs the nonce and the enrollment store: the handler's job.
  enrolled: () => undefined,
  joined: (caller, request) => {
    const taskId = (request as { taskId: number }).taskId;
    const session = caller.session;
    if (!session || session.taskId !== taskId) throw new TributaryError('NOT_JOINED', `task ${taskId}`);
    return session;
  },
};

const validators = new Map(Object.entries(CLIENT_EVENT_SCHEMAS).map(([event, schema]) => [event, Compile(schema)]));

function parse(validator: ReturnType<typeof Compile>, value: unknown): unknown {
  if (validator.Check(value)) return value;
  const first = validator.Errors(value)[0];
  throw new TributaryError('BAD_REQUEST', first ? `${first.instancePath ?? ''} ${first.message}`.trim() : undefined);
}

/** The field a rule reads from every payload: a 'joined' session is found by `taskId`; an 'enrolled' caller shows a `proof`. */
const RULE_NEEDS: Partial<Record<EventRule, string>> = { joined: 'taskId', enrolled: 'proof' };

function requires(schema: object, field: string): boolean {
  const required: unknown = (schema as { required?: unknown }).required;
  return Array.isArray(required) && required.includes(field);
}

interface Route {
  validator: ReturnType<typeof Compile>;
  admit: (caller: Caller, request: unknown) => ClientSession | undefined;
  handle: (request: unknown, call: { caller: Caller; extra: unknown[]; session: ClientSession | undefined }) => unknown;
}

/**
 * The client-facing socket protocol's one way in. Every message is rate-limited, validated
 * against its schema (shared/protocol/events.ts), admitted by its event's access rule and
 * answered through its ack: a value, or a coded error; unknown events too. Nothing a client
 * sends can throw past it.
 */
export class EventDispatcher<C extends Caller, A extends EventAccess> {
  private readonly routes = new Map<string, Route>();

  /**
   * Fails closed at attach time, as the REST routes do at startup: an event without a rule,
   * with a rule this file does not know, or with a payload that lacks what its rule reads
   * stops the server from starting, where a refusal at run time would show up only as
   * clients refused in production, long after the change that caused it.
   */
  constructor(handlers: EventHandlers<C, A>, access: A, private readonly log: Logger) {
    for (const [event, handle] of Object.entries(handlers)) {
      const rule: unknown = Object.hasOwn(access, event) ? access[event as ClientEvent] : undefined;
      const validator = validators.get(event);
      if (typeof rule !== 'string' || !Object.hasOwn(admit, rule)) throw new Error(`client event ${event} has no access rule`);
      if (!validator) throw new Error(`client event ${event} has no schema`);
      const needs = RULE_NEEDS[rule as EventRule];
      if (needs && !requires(CLIENT_EVENT_SCHEMAS[event as ClientEvent], needs)) throw new Error(`client event ${event} is '${rule}', but its payload has no ${needs}`);
      this.routes.set(event, { validator, admit: admit[rule as EventRule], handle: handle as Route['handle'] });
    }
    const unhandled = Object.keys(access).filter((event) => !this.routes.has(event));
    if (unhandled.length > 0) throw new Error(`client events with a rule but no handler: ${unhandled.join(', ')}`);
  }

  /** One message from `caller`: `args` as socket.io delivers them, the ack (if any) last. */
  async receive(caller: C, event: string, args: unknown[]): Promise<void> {
    const ack = typeof args.at(-1) === 'function' ? (args.pop() as (reply: Reply<unknown>) => void) : undefined;
    try {
      const value = await this.run(caller, event, args);
      ack?.({ ok: true, value });
    } catch (error) {
      if (!(error instanceof TributaryError)) this.log.error({ err: error, event }, 'socket handler failed');
      const body = toErrorBody(error);
      if (ack) ack({ ok: false, error: body });
      else caller.reportError(body);
    }
  }

  private async run(caller: C, event: string, [payload, ...extra]: unknown[]): Promise<unknown> {
    const route = this.routes.get(event);
    // The budget guards the handlers' work; an unknown event gets a constant answer and costs none.
    if (!route) throw new TributaryError('BAD_REQUEST', `unknown event ${JSON.stringify(String(event).slice(0, 40))}`);
    caller.spendMessage();
    const request = parse(route.validator, payload);
    const session = route.admit(caller, request);
    return route.handle(request, { caller, extra, session });
  }
}
