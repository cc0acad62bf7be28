// The audit trail: appended inside the transaction of each change, read newest first by cursor.
import type { Pool, PoolClient } from '@portcullis/runtime';
import type { AuditEntryView } from './schemas.ts';

export type Queryable = Pick<PoolClient, 'query'>;

export interface AuditRecord {
  actor: string;
  /** Dotted verb: `revision.create`, `bundle.activate`, `token.create`, `token.delete`, `token.bootstrap`. */
  action: string;
  target: string;
  bundle?: string | null;
  digestBefore?: string | null;
  digestAfter?: string | null;
  requestId?: string | null;
  details?: Record<string, unknown>;
}

/** Appends one entry; pass the transaction's client so the entry commits or rolls back with the change. */
export async function appendAudit(db: Queryable, rec: AuditRecord): Promise<void> {
  await db.query(
    `INSERT INTO audit (actor, action, target, bundle, digest_before, digest_after, request_id, details)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [
      rec.actor,
      rec.action,
      rec.target,
      rec.bundle ?? null,
      rec.digestBefore ?? null,
      rec.digestAfter ?? null,
      rec.requestId ?? null,
      JSON.stringify(rec.details ?? {}),
    ],
  );
}

export interface AuditFilter {
  bundle?: string;
  actor?: string;
  limit: number;
  /** Entries older than this id (the previous page's `next_cursor`). */
  cursor?: string;
}

interface AuditRow {
  id: string;
  actor: string;
  action: string;
  target: string;
  bundle: string | null;
  digest_before: string | null;
  digest_after: string | null;
  at: Date;
  request_id: string | null;
  details: Record<string, unknown>;
}

/** A page of entries, newest first; `next_cursor` is null on the last page. */
export async function listAudit(
  pool: Pool,
  filter: AuditFilter,
): Promise<{ entries: AuditEntryView[]; next_cursor: string | null }> {
  const where: string[] = [];
  const args: unknown[] = [];
  if (filter.bundle !== undefined) {
    args.push(filter.bundle);
    where.push(`bundle = $${args.length}`);
  }
  if (filter.actor !== undefined) {
    args.push(filter.actor);
    where.push(`actor = $${args.length}`);
  }
  if (filter.cursor !== undefined) {
    args.push(filter.cursor);
    where.push(`id < $${args.length}`);
  }
  // One more than asked tells whether another page exists without a count query.
  args.push(filter.limit + 1);
  const { rows } = await pool.query<AuditRow>(
    `SELECT id, actor, action, target, bundle, digest_before, digest_after, at, request_id, details
       FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY id DESC LIMIT $${args.length}`,
    args,
  );
  const page = rows.slice(0, filter.limit);
  const last = page.at(-1);
  return {
    entries: page.map((r) => ({
      id: Number(r.id),
      actor: r.actor,
      action: r.action,
      target: r.target,
      bundle: r.bundle,
      digest_before: r.digest_before,
      digest_after: r.digest_after,
      at: r.at.toISOString(),
      request_id: r.request_id,
      details: r.details,
    })),
    next_cursor: rows.length > filter.limit && last ? String(last.id) : null,
  };
}
