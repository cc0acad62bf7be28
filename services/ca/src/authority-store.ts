// The authority row in Postgres: created once under an advisory lock, changed only under that lock, versioned.
import { type AuthorityState, parseAuthorityState } from '@portcullis/pki';
import { type Pool, type PoolClient, withTransaction } from '@portcullis/runtime';

export interface StoredAuthority {
  readonly state: AuthorityState;
  /** Grows by one with each change. */
  readonly version: number;
}

export interface AuditEntry {
  readonly action: string;
  readonly actor?: string | undefined;
  readonly spiffeId?: string | undefined;
  readonly reason?: string | undefined;
  readonly message?: string | undefined;
  readonly details?: Record<string, unknown>;
}

// One lock for every writer of the authority row: replicas starting together, rotations, pruning.
const AUTHORITY_LOCK = "SELECT pg_advisory_xact_lock(hashtext('portcullis-ca-authority'))";

export async function appendAudit(db: Pool | PoolClient, entry: AuditEntry): Promise<void> {
  await db.query(
    `INSERT INTO ca_audit (action, actor, spiffe_id, reason, message, details)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [
      entry.action,
      entry.actor ?? null,
      entry.spiffeId ?? null,
      entry.reason ?? null,
      entry.message ?? null,
      JSON.stringify(entry.details ?? {}),
    ],
  );
}

function stored(row: { state: unknown; version: string | number }): StoredAuthority {
  return { state: parseAuthorityState(row.state), version: Number(row.version) };
}

/**
 * Contract: every change runs in a transaction holding the authority lock and reads the row it
 * changes inside that transaction, so two replicas can never both create a root or both rotate
 * from the same state; the loser of a race sees the winner's result.
 */
export class AuthorityStore {
  constructor(private readonly pool: Pool) {}

  /** The stored authority, or undefined before the first start. */
  async read(): Promise<StoredAuthority | undefined> {
    const { rows } = await this.pool.query<{ state: unknown; version: string }>(
      'SELECT state, version FROM ca_authority WHERE id = 1',
    );
    return rows[0] === undefined ? undefined : stored(rows[0]);
  }

  /** Only the version: what a replica polls to notice another one's change. */
  async version(): Promise<number | undefined> {
    const { rows } = await this.pool.query<{ version: string }>(
      'SELECT version FROM ca_authority WHERE id = 1',
    );
    return rows[0] === undefined ? undefined : Number(rows[0].version);
  }

  /** The stored authority, or the one `create` makes when there is none (then audited as `authority.create`). */
  async loadOrCreate(create: () => Promise<AuthorityState>, actor: string): Promise<StoredAuthority> {
    const existing = await this.read();
    if (existing !== undefined) return existing;
    return withTransaction(this.pool, async (client) => {
      await client.query(AUTHORITY_LOCK);
      const { rows } = await client.query<{ state: unknown; version: string }>(
        'SELECT state, version FROM ca_authority WHERE id = 1',
      );
      if (rows[0] !== undefined) return stored(rows[0]);
      const state = await create();
      await client.query('INSERT INTO ca_authority (id, state, version) VALUES (1, $1, 1)', [
        JSON.stringify(state),
      ]);
      await appendAudit(client, {
        action: 'authority.create',
        actor,
        details: { roots: state.roots.length, origin: state.active.origin },
      });
      return { state, version: 1 };
    });
  }

  /**
   * Applies `change` to the current state under the lock. `change` returns the new state and the
   * audit entry, or undefined to leave the row as it is (then nothing is written).
   */
  async update(
    change: (current: StoredAuthority) => Promise<{ state: AuthorityState; audit: AuditEntry } | undefined>,
  ): Promise<StoredAuthority> {
    return withTransaction(this.pool, async (client) => {
      await client.query(AUTHORITY_LOCK);
      const { rows } = await client.query<{ state: unknown; version: string }>(
        'SELECT state, version FROM ca_authority WHERE id = 1',
      );
      if (rows[0] === undefined) throw new Error('the CA authority has not been created yet');
      const current = stored(rows[0]);
      const next = await change(current);
      if (next === undefined) return current;
      const version = current.version + 1;
      await client.query(
        'UPDATE ca_authority SET state = $1, version = $2, updated_at = now() WHERE id = 1',
        [JSON.stringify(next.state), version],
      );
      await appendAudit(client, next.audit);
      return { state: next.state, version };
    });
  }
}
