// The PIP's outbox: change events written in the transaction that makes the change, published later by the relay.
import type { PoolClient } from '@portcullis/runtime';

/** The PIP's own outbox table and doorbell: the PAP's `outbox` may live in the same database. */
export const PIP_OUTBOX_TABLE = 'pip_outbox';
export const PIP_OUTBOX_CHANNEL = 'portcullis_pip_outbox';

/**
 * RequestAuthentication changes, for the other PIP replicas (and, later, proxies that verify
 * tokens themselves). Not in the runtime's TOPICS yet: only the PIP produces and consumes it.
 */
export const IDENTITY_EVENTS_TOPIC = 'portcullis.identity.events';

export type Queryable = Pick<PoolClient, 'query'>;

/** Adds an event to the outbox inside the caller's transaction; NOTIFY is delivered on commit only. */
export async function enqueueEvent(
  db: Queryable,
  topic: string,
  key: string,
  payload: string,
): Promise<void> {
  await db.query('INSERT INTO pip_outbox (topic, key, payload) VALUES ($1, $2, $3::jsonb)', [
    topic,
    key,
    payload,
  ]);
  await db.query('SELECT pg_notify($1, $2)', [PIP_OUTBOX_CHANNEL, '']);
}
