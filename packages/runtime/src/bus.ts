// The event bus contract: one interface, two transports (Kafka, Postgres), chosen by BUS.

/** Topic names are part of the contract between services. */
export const TOPICS = {
  policyEvents: 'portcullis.policy.events',
  decisionLogs: 'portcullis.decision.logs',
  attributeEvents: 'portcullis.attribute.events',
} as const;

export interface BusMessage {
  topic: string;
  /** Partitioning key (e.g. the bundle name): messages with one key keep their order. */
  key: string;
  value: string;
}

export type BusHandler = (message: BusMessage) => Promise<void> | void;

export interface SubscribeOptions {
  /** The subscription has its transport again after `onDisconnect`: time to reconcile. */
  onReconnect?: () => void;
  /** The subscription lost its transport; it keeps trying to get it back by itself. */
  onDisconnect?: (err: unknown) => void;
}

export interface Subscription {
  close(): Promise<void>;
}

/**
 * A publish/subscribe bus.
 * - `publish` resolves only after the transport has durably accepted every message (Kafka:
 *   acks=all; Postgres: committed). It rejects (PortcullisError `unavailable`) within a few
 *   seconds when the transport is down; callers (the outbox relay) retry, so a rejected publish
 *   is never lost, only delayed. A publish that rejects may still have been accepted (the ack
 *   was lost), so a retry can duplicate: delivery is at least once. Messages of one `publish`
 *   call, and of successive calls from one caller, keep their order per key.
 * - `subscribe` delivers every message published after it resolves to this subscriber: each
 *   subscriber is its own consumer (no shared group splitting messages). Delivery is at least
 *   once and ordered per key; handlers must tolerate duplicates. The handler is awaited before
 *   the next message of the subscription; a handler that throws is logged and the message
 *   skipped (no redelivery: a poison message must not stall the stream). `subscribe` rejects
 *   when the transport cannot be reached at that moment; once it has resolved, the
 *   subscription survives outages by itself, calling `onDisconnect` when it loses the
 *   transport and `onReconnect` when it has it again (never for the first connection).
 *   Messages published while a subscriber was disconnected may be missed (each transport
 *   replays what it can, but neither promises it): that is why consumers reconcile on
 *   `onReconnect` rather than trusting the stream to be complete.
 * - `close` closes every subscription and releases connections; it is idempotent.
 */
export interface Bus {
  readonly transport: 'kafka' | 'postgres';
  publish(messages: BusMessage[]): Promise<void>;
  subscribe(topic: string, handler: BusHandler, opts?: SubscribeOptions): Promise<Subscription>;
  close(): Promise<void>;
}
