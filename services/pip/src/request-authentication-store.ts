// RequestAuthentication resources in Postgres: the documents as submitted, versioned, with change events through the outbox.
import {
  decodeResourceDocument,
  InvalidResourceError,
  parseRequestAuthentication,
  type RequestAuthentication,
} from '@portcullis/identity';
import { type Pool, PortcullisError, withTransaction } from '@portcullis/runtime';
import { enqueueEvent, IDENTITY_EVENTS_TOPIC, type Queryable } from './pip-outbox.ts';

export interface StoredRequestAuthentication {
  namespace: string;
  name: string;
  /** The Istio resource as submitted (YAML decoded to JSON), metadata filled from the path. */
  document: Record<string, unknown>;
  version: number;
  updated_by: string;
  updated_at: string;
}

/** `{"type": "request-authentication.changed", namespace, name, version, deleted}`: a hint to reload that resource. */
export interface RequestAuthenticationEvent {
  type: 'request-authentication.changed';
  namespace: string;
  name: string;
  version: number;
  deleted: boolean;
}

interface Row {
  namespace: string;
  name: string;
  document: Record<string, unknown>;
  version: string;
  updated_by: string;
  updated_at: Date;
}

const COLUMNS = 'namespace, name, document, version, updated_by, updated_at';

function view(row: Row): StoredRequestAuthentication {
  return {
    namespace: row.namespace,
    name: row.name,
    document: row.document,
    version: Number(row.version),
    updated_by: row.updated_by,
    updated_at: row.updated_at.toISOString(),
  };
}

export function etagOf(version: number): string {
  return `"${version}"`;
}

/**
 * Decodes and validates a submitted resource for `namespace/name`: YAML or JSON text, or an already
 * decoded object. Metadata may omit the namespace and name (the path gives them) but must not
 * contradict them. Throws `InvalidResourceError` naming each problem's field.
 */
export function acceptResource(
  body: unknown,
  namespace: string,
  name: string,
): { resource: RequestAuthentication; document: Record<string, unknown> } {
  const decoded = typeof body === 'string' ? decodeResourceDocument(body) : body;
  if (typeof decoded !== 'object' || decoded === null || Array.isArray(decoded)) {
    throw new InvalidResourceError([{ path: '', reason: 'a RequestAuthentication must be an object' }]);
  }
  const document = structuredClone(decoded) as Record<string, unknown>;
  const metadata = document['metadata'] ?? {};
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw new InvalidResourceError([{ path: 'metadata', reason: 'must be an object' }]);
  }
  const meta = metadata as Record<string, unknown>;
  const problems: { path: string; reason: string }[] = [];
  if (meta['name'] !== undefined && meta['name'] !== name) {
    problems.push({ path: 'metadata.name', reason: `must be ${JSON.stringify(name)}, the name in the path` });
  }
  if (meta['namespace'] !== undefined && meta['namespace'] !== null && meta['namespace'] !== namespace) {
    problems.push({
      path: 'metadata.namespace',
      reason: `must be ${JSON.stringify(namespace)}, the namespace in the path`,
    });
  }
  if (problems.length > 0) throw new InvalidResourceError(problems);
  document['metadata'] = { ...meta, name, namespace };
  return { resource: parseRequestAuthentication(document), document };
}

export class RequestAuthenticationStore {
  constructor(private readonly pool: Pool) {}

  async get(namespace: string, name: string): Promise<StoredRequestAuthentication | undefined> {
    const { rows } = await this.pool.query<Row>(
      `SELECT ${COLUMNS} FROM request_authentications WHERE namespace = $1 AND name = $2`,
      [namespace, name],
    );
    return rows[0] === undefined ? undefined : view(rows[0]);
  }

  async list(namespace?: string): Promise<StoredRequestAuthentication[]> {
    const { rows } =
      namespace === undefined
        ? await this.pool.query<Row>(
            `SELECT ${COLUMNS} FROM request_authentications ORDER BY namespace, name`,
          )
        : await this.pool.query<Row>(
            `SELECT ${COLUMNS} FROM request_authentications WHERE namespace = $1 ORDER BY name`,
            [namespace],
          );
    return rows.map(view);
  }

  /** Creates or replaces; `ifMatch` (ETags or `*`) makes it conditional (412 otherwise). */
  async put(
    namespace: string,
    name: string,
    document: Record<string, unknown>,
    actor: string,
    ifMatch?: readonly string[],
  ): Promise<{ record: StoredRequestAuthentication; created: boolean }> {
    return withTransaction(this.pool, async (client) => {
      if (ifMatch !== undefined) await checkIfMatch(client, namespace, name, ifMatch);
      const { rows } = await client.query<Row & { created: boolean }>(
        `INSERT INTO request_authentications (namespace, name, document, updated_by) VALUES ($1, $2, $3::jsonb, $4)
         ON CONFLICT (namespace, name) DO UPDATE
           SET document = EXCLUDED.document, version = request_authentications.version + 1,
               updated_by = EXCLUDED.updated_by, updated_at = now()
         RETURNING ${COLUMNS}, (xmax = 0) AS created`,
        [namespace, name, JSON.stringify(document), actor],
      );
      const row = rows[0]!;
      await announce(client, { namespace, name, version: Number(row.version), deleted: false });
      return { record: view(row), created: row.created };
    });
  }

  /** Deletes; 404 when absent, 412 when `ifMatch` does not match. */
  async delete(namespace: string, name: string, ifMatch?: readonly string[]): Promise<void> {
    await withTransaction(this.pool, async (client) => {
      const version = await checkIfMatch(client, namespace, name, ifMatch ?? ['*']);
      await client.query('DELETE FROM request_authentications WHERE namespace = $1 AND name = $2', [
        namespace,
        name,
      ]);
      await announce(client, { namespace, name, version, deleted: true });
    });
  }
}

async function checkIfMatch(
  client: Queryable,
  namespace: string,
  name: string,
  tags: readonly string[],
): Promise<number> {
  const { rows } = await client.query<{ version: string }>(
    'SELECT version FROM request_authentications WHERE namespace = $1 AND name = $2 FOR UPDATE',
    [namespace, name],
  );
  const current = rows[0] === undefined ? undefined : Number(rows[0].version);
  if (current === undefined) {
    if (tags.length === 1 && tags[0] === '*') {
      throw new PortcullisError('not_found', `no RequestAuthentication ${namespace}/${name}`);
    }
    throw new PortcullisError(
      'precondition_failed',
      `${namespace}/${name} does not exist, so no ETag matches`,
      {
        details: [{ field: 'headers.if-match', current: null }],
      },
    );
  }
  if (!tags.includes('*') && !tags.includes(etagOf(current))) {
    throw new PortcullisError('precondition_failed', `${namespace}/${name} is at ETag ${etagOf(current)}`, {
      details: [{ field: 'headers.if-match', current: etagOf(current) }],
    });
  }
  return current;
}

async function announce(client: Queryable, change: Omit<RequestAuthenticationEvent, 'type'>): Promise<void> {
  const event: RequestAuthenticationEvent = { type: 'request-authentication.changed', ...change };
  await enqueueEvent(
    client,
    IDENTITY_EVENTS_TOPIC,
    `${change.namespace}/${change.name}`,
    JSON.stringify(event),
  );
}
