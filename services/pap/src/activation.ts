// Activating a revision under If-Match: activation, pointer, outbox row and audit in one transaction.
import {
  OUTBOX_NOTIFY_CHANNEL,
  type Pool,
  PortcullisError,
  TOPICS,
  withTransaction,
} from '@portcullis/runtime';
import { appendAudit } from './audit-store.ts';
import { activationEtag } from './bundle-store.ts';
import type { ActivationView } from './schemas.ts';

/** The channel the outbox relay listens on to publish early instead of at its next poll. */
export const OUTBOX_CHANNEL = OUTBOX_NOTIFY_CHANNEL;

export interface ActivationRequest {
  bundle: string;
  revision: number;
  /** The raw If-Match header; required. */
  ifMatch: string | undefined;
  actor: string;
  requestId?: string;
}

/** The entity tags an If-Match header lists; weak tags never match (If-Match uses strong comparison). */
export function parseIfMatch(header: string): string[] {
  return header
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0 && !t.startsWith('W/'));
}

/**
 * Activates `revision` of `bundle`. The bundle's row is locked (`FOR UPDATE`) before the ETag
 * is compared, so of two activations sent with the same ETag exactly one commits and the other
 * sees the new ETag and gets 412: no activation silently overwrites another. The outbox row
 * commits with the activation, so an activation is never lost even when the bus is down; the
 * NOTIFY is delivered only when the transaction commits.
 */
export async function activateRevision(pool: Pool, req: ActivationRequest): Promise<ActivationView> {
  if (req.ifMatch === undefined || req.ifMatch.trim() === '') {
    throw new PortcullisError(
      'precondition_required',
      'activation needs an If-Match header with the bundle’s ETag',
      {
        details: [
          { field: 'headers.if-match', message: 'missing; GET /v1/bundles/{bundle} returns the ETag' },
        ],
      },
    );
  }
  const tags = parseIfMatch(req.ifMatch);
  return withTransaction(pool, async (client) => {
    // Lock first, read after: in READ COMMITTED a later statement sees what the lock holder
    // committed, whereas a join in the locking statement itself would read the older snapshot.
    const { rowCount } = await client.query('SELECT 1 FROM bundles WHERE name = $1 FOR UPDATE', [req.bundle]);
    if (!rowCount) {
      throw new PortcullisError('not_found', `no bundle ${req.bundle}`, {
        details: [{ field: 'params.bundle', bundle: req.bundle }],
      });
    }
    const { rows: actives } = await client.query<{ seq: string; digest: string }>(
      `SELECT ar.seq, a.digest FROM active_revisions ar JOIN activations a ON a.seq = ar.seq WHERE ar.bundle = $1`,
      [req.bundle],
    );
    const current = { seq: actives[0]?.seq ?? null, digest: actives[0]?.digest ?? null };
    const etag = activationEtag(current.seq);
    if (!tags.includes(etag)) {
      throw new PortcullisError(
        'precondition_failed',
        `If-Match ${req.ifMatch} is not the current ETag ${etag}`,
        {
          details: [{ field: 'headers.if-match', message: 'stale', current_etag: etag }],
        },
      );
    }
    const { rows: revs } = await client.query<{ digest: string }>(
      'SELECT digest FROM revisions WHERE bundle = $1 AND revision = $2',
      [req.bundle, req.revision],
    );
    const rev = revs[0];
    if (!rev) {
      throw new PortcullisError('not_found', `bundle ${req.bundle} has no revision ${req.revision}`, {
        details: [{ field: 'body.revision', bundle: req.bundle, revision: req.revision }],
      });
    }
    const { rows: acts } = await client.query<{ seq: string; activated_at: Date }>(
      `INSERT INTO activations (bundle, revision, digest, actor) VALUES ($1, $2, $3, $4)
       RETURNING seq, activated_at`,
      [req.bundle, req.revision, rev.digest, req.actor],
    );
    const act = acts[0]!;
    await client.query(
      `INSERT INTO active_revisions (bundle, seq) VALUES ($1, $2)
       ON CONFLICT (bundle) DO UPDATE SET seq = EXCLUDED.seq`,
      [req.bundle, act.seq],
    );
    const activatedAt = act.activated_at.toISOString();
    await client.query('INSERT INTO outbox (topic, key, payload) VALUES ($1, $2, $3)', [
      TOPICS.policyEvents,
      req.bundle,
      JSON.stringify({
        bundle: req.bundle,
        revision: req.revision,
        digest: rev.digest,
        activation_seq: Number(act.seq),
        activated_at: activatedAt,
      }),
    ]);
    await appendAudit(client, {
      actor: req.actor,
      action: 'bundle.activate',
      target: `bundles/${req.bundle}/active`,
      bundle: req.bundle,
      digestBefore: current.digest,
      digestAfter: rev.digest,
      requestId: req.requestId ?? null,
      details: { revision: req.revision, activation_seq: Number(act.seq), previous_etag: etag },
    });
    await client.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, req.bundle]);
    return {
      bundle: req.bundle,
      revision: req.revision,
      digest: rev.digest,
      activation_seq: Number(act.seq),
      activated_at: activatedAt,
      etag: activationEtag(act.seq),
    };
  });
}
