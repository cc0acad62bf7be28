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

export interface Subscription {
  close(): Promise<void>;
}

/**
 * A publish/subscribe bus.
 * - `publish` resolves only after the transport has durably accepted every message (Kafka:
 *   acks=all; Postgres: committed). It rejects when the transport is down; callers (the
 *   outbox relay) retry, so a rejected publish is never lost, only delayed.
 * - `subscribe` delivers every message published after it resolves to this subscriber: each
 *   subscriber is its own consumer (no shared group splitting messages). Delivery is at least
 *   once and ordered per key; handlers must tolerate duplicates. Messages published while a
 *   subscriber was disconnected may be missed: that is why consumers reconcile on
 *   `onReconnect` rather than trusting the stream to be complete.
 */
export interface Bus {
  readonly transport: 'kafka' | 'postgres';
  publish(messages: BusMessage[]): Promise<void>;
  subscribe(
    topic: string,
    handler: BusHandler,
    opts?: { onReconnect?: () => void; onDisconnect?: (err: unknown) => void },
  ): Promise<Subscription>;
  close(): Promise<void>;
}
