// API tokens: generated, stored as sha256 hashes, checked in constant time, and the first admin token.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import {
  isPgError,
  type Logger,
  PG_UNIQUE_VIOLATION,
  type Pool,
  PortcullisError,
  withTransaction,
} from '@portcullis/runtime';
import { appendAudit, type Queryable } from './audit-store.ts';
import type { Role, TokenView } from './schemas.ts';

export interface Principal {
  tokenId: string;
  /** The token's name: the actor in the audit trail and the author of revisions. */
  name: string;
  role: Role;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** 256 random bits; the prefix makes a leaked token easy to recognise in secret scanners. */
export function generateToken(): string {
  return `pct_${randomBytes(32).toString('base64url')}`;
}

function newTokenId(): string {
  return `tok_${randomBytes(8).toString('hex')}`;
}

/** Rows are found by the hash's first 16 hex digits; the whole hash is then compared in constant time. */
function lookupKey(hash: string): string {
  return hash.slice(0, 16);
}

interface TokenRow {
  id: string;
  name: string;
  role: Role;
  created_by: string;
  created_at: Date;
}

function view(r: TokenRow): TokenView {
  return {
    id: r.id,
    name: r.name,
    role: r.role,
    created_by: r.created_by,
    created_at: r.created_at.toISOString(),
  };
}

const ENV_TOKEN_NAME = 'admin-env';
const BOOTSTRAP_TOKEN_NAME = 'admin-bootstrap';

export class TokenStore {
  constructor(private readonly pool: Pool) {}

  /** The principal a bearer token stands for, or undefined when no stored token matches. */
  async authenticate(token: string): Promise<Principal | undefined> {
    const hash = Buffer.from(hashToken(token), 'hex');
    const { rows } = await this.pool.query<TokenRow & { sha256: string }>(
      'SELECT id, name, role, sha256 FROM api_tokens WHERE lookup = $1',
      [lookupKey(hash.toString('hex'))],
    );
    let found: Principal | undefined;
    for (const row of rows) {
      if (timingSafeEqual(Buffer.from(row.sha256, 'hex'), hash)) {
        found = { tokenId: row.id, name: row.name, role: row.role };
      }
    }
    return found;
  }

  async list(): Promise<TokenView[]> {
    const { rows } = await this.pool.query<TokenRow>(
      'SELECT id, name, role, created_by, created_at FROM api_tokens ORDER BY created_at, id',
    );
    return rows.map(view);
  }

  /** Creates a token; the clear token is returned once and never stored. 409 when the name is taken. */
  async create(input: {
    name: string;
    role: Role;
    actor: string;
    requestId?: string;
  }): Promise<{ token: string; record: TokenView }> {
    const token = generateToken();
    try {
      const record = await withTransaction(this.pool, async (client) => {
        const row = await insertToken(client, {
          name: input.name,
          role: input.role,
          token,
          createdBy: input.actor,
        });
        await appendAudit(client, {
          actor: input.actor,
          action: 'token.create',
          target: `tokens/${row.id}`,
          requestId: input.requestId ?? null,
          details: { name: row.name, role: row.role },
        });
        return view(row);
      });
      return { token, record };
    } catch (err) {
      if (isPgError(err, PG_UNIQUE_VIOLATION)) {
        throw new PortcullisError('conflict', `a token named ${JSON.stringify(input.name)} exists`, {
          details: [{ field: 'body.name', message: 'already exists' }],
          cause: err,
        });
      }
      throw err;
    }
  }

  /** Deletes a token; refuses to delete the last admin token (409), which would lock everyone out. */
  async remove(id: string, actor: string, requestId?: string): Promise<void> {
    await withTransaction(this.pool, async (client) => {
      // Serialises deletions so two concurrent ones cannot each leave the other as the last admin.
      await client.query("SELECT pg_advisory_xact_lock(hashtext('portcullis-pap-tokens'))");
      const { rows } = await client.query<TokenRow>(
        'SELECT id, name, role, created_by, created_at FROM api_tokens WHERE id = $1',
        [id],
      );
      const row = rows[0];
      if (!row) throw new PortcullisError('not_found', `no token ${id}`);
      if (row.role === 'admin') {
        const { rows: admins } = await client.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM api_tokens WHERE role = 'admin'",
        );
        if ((admins[0]?.n ?? 0) <= 1)
          throw new PortcullisError('conflict', 'cannot delete the last admin token');
      }
      await client.query('DELETE FROM api_tokens WHERE id = $1', [id]);
      await appendAudit(client, {
        actor,
        action: 'token.delete',
        target: `tokens/${id}`,
        requestId: requestId ?? null,
        details: { name: row.name, role: row.role },
      });
    });
  }

  /**
   * Makes sure someone can administer the PAP. `seedToken` (PAP_ADMIN_TOKEN) is stored as the
   * admin token named `admin-env`, replacing an earlier value. Otherwise, when no admin token
   * exists, one is generated and written to `tokenFile` with mode 0600: the clear token goes to
   * that file only, never to a log. Runs under a transaction-scoped advisory lock, so replicas
   * starting together create one token between them.
   */
  async bootstrap(opts: { seedToken?: string; tokenFile: string; logger: Logger }): Promise<void> {
    await withTransaction(this.pool, async (client) => {
      await client.query("SELECT pg_advisory_xact_lock(hashtext('portcullis-pap-tokens'))");
      if (opts.seedToken !== undefined) {
        const { rows } = await client.query<{ sha256: string }>(
          'SELECT sha256 FROM api_tokens WHERE name = $1',
          [ENV_TOKEN_NAME],
        );
        if (rows[0]?.sha256 === hashToken(opts.seedToken)) return;
        await client.query('DELETE FROM api_tokens WHERE name = $1', [ENV_TOKEN_NAME]);
        const row = await insertToken(client, {
          name: ENV_TOKEN_NAME,
          role: 'admin',
          token: opts.seedToken,
          createdBy: 'system',
        });
        await appendAudit(client, {
          actor: 'system',
          action: 'token.bootstrap',
          target: `tokens/${row.id}`,
          details: { name: row.name, role: row.role, source: 'PAP_ADMIN_TOKEN' },
        });
        opts.logger.info({ tokenId: row.id }, 'admin token from PAP_ADMIN_TOKEN stored');
        return;
      }
      const { rows } = await client.query("SELECT 1 FROM api_tokens WHERE role = 'admin' LIMIT 1");
      if (rows.length > 0) return;
      const token = generateToken();
      await client.query('DELETE FROM api_tokens WHERE name = $1', [BOOTSTRAP_TOKEN_NAME]);
      const row = await insertToken(client, {
        name: BOOTSTRAP_TOKEN_NAME,
        role: 'admin',
        token,
        createdBy: 'system',
      });
      await appendAudit(client, {
        actor: 'system',
        action: 'token.bootstrap',
        target: `tokens/${row.id}`,
        details: { name: row.name, role: row.role, source: 'generated' },
      });
      // Written before the commit: if the file cannot be written, no unreachable admin token is stored.
      const path = resolve(opts.tokenFile);
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await writeFile(path, `${token}\n`, { mode: 0o600 });
      await chmod(path, 0o600);
      opts.logger.info(
        { tokenId: row.id, file: path },
        'no admin token existed: generated one and wrote it to the file',
      );
    });
  }
}

async function insertToken(
  db: Queryable,
  t: { name: string; role: Role; token: string; createdBy: string },
): Promise<TokenRow> {
  const hash = hashToken(t.token);
  const { rows } = await db.query<TokenRow>(
    `INSERT INTO api_tokens (id, name, role, lookup, sha256, created_by) VALUES ($1, $2, $3, $4, $5, $6)
     RETURNING id, name, role, created_by, created_at`,
    [newTokenId(), t.name, t.role, lookupKey(hash), hash, t.createdBy],
  );
  return rows[0]!;
}
