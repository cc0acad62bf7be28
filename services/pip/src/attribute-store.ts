// Subject and resource attributes in Postgres: versioned records, conditional writes, change events through the outbox.
import {
  ATTRIBUTE_EVENTS_TOPIC,
  type AttributeChange,
  attributeEventKey,
  encodeAttributeEvent,
} from '@portcullis/attributes';
import { type Pool, PortcullisError, withTransaction } from '@portcullis/runtime';
import { type AttributeSchemas, schemaProblems } from './attribute-schemas.ts';
import { enqueueEvent, type Queryable } from './pip-outbox.ts';

export interface AttributeRecord {
  kind: string;
  id: string;
  attributes: Record<string, unknown>;
  version: number;
  updated_at: string;
}

/** What a write must find first; each failure has its own answer (see `put`). */
export interface WritePreconditions {
  /** `If-Match`: the ETags (`"<version>"`) one of which must be current, or `*` (must exist). 412 otherwise. */
  ifMatch?: readonly string[];
  /** `If-None-Match: *`: the record must not exist yet. 412 otherwise. */
  ifNoneMatch?: boolean;
  /** `version` in the body: the version the writer read. 409 when the record has moved on. */
  expectedVersion?: number;
}

export interface ImportRow {
  kind: string;
  id: string;
  attributes: Record<string, unknown>;
}

export const KIND_PATTERN = '^[a-z][a-z0-9_.-]{0,62}$';
const KIND = new RegExp(KIND_PATTERN);
export const MAX_ID_LENGTH = 512;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point.
const CONTROL = /[\u0000-\u001f\u007f]/;

export function etagOf(version: number): string {
  return `"${version}"`;
}

/** Why a kind or id is refused, or undefined when it is acceptable. */
export function keyProblem(kind: unknown, id: unknown): { field: string; message: string } | undefined {
  if (typeof kind !== 'string' || !KIND.test(kind)) {
    return { field: 'kind', message: `must match ${KIND_PATTERN}` };
  }
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID_LENGTH || CONTROL.test(id)) {
    return { field: 'id', message: `must be 1 to ${MAX_ID_LENGTH} characters without control characters` };
  }
  return undefined;
}

interface Row {
  kind: string;
  id: string;
  attributes: Record<string, unknown>;
  version: string;
  updated_at: Date;
}

const COLUMNS = 'kind, id, attributes, version, updated_at';

function view(row: Row): AttributeRecord {
  return {
    kind: row.kind,
    id: row.id,
    attributes: row.attributes,
    version: Number(row.version),
    updated_at: row.updated_at.toISOString(),
  };
}

/**
 * The attribute store. Contract:
 * - Every committed change bumps `version` by one and writes its event to the outbox in the same
 *   transaction, so no change is lost to a bus outage and no event announces an uncommitted change.
 * - Conditional writes (`If-Match`, body `version`) compare inside one `UPDATE … WHERE version = $n`:
 *   of concurrent writers holding the same version exactly one succeeds; the others get 412 (header)
 *   or 409 (body). An unconditional write never loses another: it applies on top of whatever
 *   committed before it (last writer wins) and gets its own version.
 */
export class AttributeStore {
  constructor(
    readonly pool: Pool,
    private readonly schemas: AttributeSchemas,
    private readonly maxAttributeBytes: number,
  ) {}

  async get(kind: string, id: string): Promise<AttributeRecord | undefined> {
    const { rows } = await this.pool.query<Row>(
      `SELECT ${COLUMNS} FROM attributes WHERE kind = $1 AND id = $2`,
      [kind, id],
    );
    return rows[0] === undefined ? undefined : view(rows[0]);
  }

  /** One answer per key, in order; undefined for a missing record. One query whatever the count. */
  async batchGet(keys: readonly { kind: string; id: string }[]): Promise<(AttributeRecord | undefined)[]> {
    if (keys.length === 0) return [];
    const { rows } = await this.pool.query<Row>(
      `SELECT ${COLUMNS} FROM attributes
       WHERE (kind, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
      [keys.map((k) => k.kind), keys.map((k) => k.id)],
    );
    const byKey = new Map(rows.map((r) => [`${r.kind}\u0000${r.id}`, r]));
    return keys.map((k) => {
      const row = byKey.get(`${k.kind}\u0000${k.id}`);
      return row === undefined ? undefined : view(row);
    });
  }

  /** Creates or replaces a record's attributes; `created` tells which. */
  async put(
    kind: string,
    id: string,
    attributes: Record<string, unknown>,
    pre: WritePreconditions = {},
  ): Promise<{ record: AttributeRecord; created: boolean }> {
    const json = this.checkAttributes(attributes, 'body.attributes');
    return withTransaction(this.pool, async (client) => {
      const validate = (await this.schemas.validators(client, [kind])).get(kind);
      if (validate !== undefined && !validate(attributes)) {
        const details = schemaProblems(validate.errors, 'body.attributes');
        throw new PortcullisError(
          'validation_failed',
          `the attributes do not match the schema of kind ${kind}: ${details.map((d) => `${d.field} ${d.message}`).join('; ')}`,
          { details },
        );
      }
      const result = await this.write(client, kind, id, json, pre);
      await this.announce(client, [{ kind, id, version: result.record.version, deleted: false }]);
      return result;
    });
  }

  /** Deletes a record (honouring the same preconditions as `put`); 404 when there is none. */
  async delete(kind: string, id: string, pre: WritePreconditions = {}): Promise<AttributeRecord> {
    return withTransaction(this.pool, async (client) => {
      const { rows } = await client.query<Row>(
        `SELECT ${COLUMNS} FROM attributes WHERE kind = $1 AND id = $2 FOR UPDATE`,
        [kind, id],
      );
      const row = rows[0];
      if (row === undefined) {
        if (pre.ifMatch !== undefined) throw preconditionFailed(kind, id, undefined);
        throw notFound(kind, id);
      }
      const current = Number(row.version);
      if (pre.ifMatch !== undefined && !matches(pre.ifMatch, current))
        throw preconditionFailed(kind, id, current);
      if (pre.expectedVersion !== undefined && pre.expectedVersion !== current) {
        throw conflict(kind, id, current, pre.expectedVersion);
      }
      await client.query('DELETE FROM attributes WHERE kind = $1 AND id = $2', [kind, id]);
      await this.announce(client, [{ kind, id, version: current, deleted: true }]);
      return view(row);
    });
  }

  /**
   * Upserts a batch of rows in one statement and one transaction with one outbox event; rows must
   * have distinct keys (the importer splits batches at a repeated key). Answers each row's new version.
   */
  async importBatch(rows: readonly ImportRow[]): Promise<number[]> {
    if (rows.length === 0) return [];
    return withTransaction(this.pool, async (client) => {
      const { rows: written } = await client.query<{ kind: string; id: string; version: string }>(
        `INSERT INTO attributes (kind, id, attributes)
         SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])
         ON CONFLICT (kind, id) DO UPDATE
           SET attributes = EXCLUDED.attributes, version = attributes.version + 1, updated_at = now()
         RETURNING kind, id, version`,
        [rows.map((r) => r.kind), rows.map((r) => r.id), rows.map((r) => JSON.stringify(r.attributes))],
      );
      const changes = written.map((w) => ({
        kind: w.kind,
        id: w.id,
        version: Number(w.version),
        deleted: false,
      }));
      await this.announce(client, changes);
      const byKey = new Map(changes.map((c) => [`${c.kind}\u0000${c.id}`, c.version]));
      return rows.map((r) => byKey.get(`${r.kind}\u0000${r.id}`) ?? 0);
    });
  }

  /** The attributes as JSON text; 400 when over the per-record limit or holding what jsonb refuses. */
  checkAttributes(attributes: Record<string, unknown>, field: string): string {
    const json = JSON.stringify(attributes);
    const size = Buffer.byteLength(json, 'utf8');
    if (size > this.maxAttributeBytes) {
      throw new PortcullisError(
        'validation_failed',
        `${field} is ${size} bytes; the limit is ${this.maxAttributeBytes}`,
        {
          details: [{ field, message: `at most ${this.maxAttributeBytes} bytes of JSON` }],
        },
      );
    }
    // Postgres jsonb cannot store NUL in a string; refusing it here names the field instead of failing with a 500.
    if (json.includes('\\u0000')) {
      throw new PortcullisError('validation_failed', `${field} holds a string with NUL (\\u0000)`, {
        details: [{ field, message: 'strings must not contain NUL' }],
      });
    }
    return json;
  }

  get attributeSchemas(): AttributeSchemas {
    return this.schemas;
  }

  private async write(
    client: Queryable,
    kind: string,
    id: string,
    json: string,
    pre: WritePreconditions,
  ): Promise<{ record: AttributeRecord; created: boolean }> {
    if (pre.ifNoneMatch) {
      const { rows } = await client.query<Row>(
        `INSERT INTO attributes (kind, id, attributes) VALUES ($1, $2, $3::jsonb)
         ON CONFLICT (kind, id) DO NOTHING RETURNING ${COLUMNS}`,
        [kind, id, json],
      );
      if (rows[0] === undefined) throw preconditionFailed(kind, id, await currentVersion(client, kind, id));
      return { record: view(rows[0]), created: true };
    }
    const conditional = pre.ifMatch !== undefined || pre.expectedVersion !== undefined;
    if (!conditional) {
      const { rows } = await client.query<Row & { created: boolean }>(
        `INSERT INTO attributes (kind, id, attributes) VALUES ($1, $2, $3::jsonb)
         ON CONFLICT (kind, id) DO UPDATE
           SET attributes = EXCLUDED.attributes, version = attributes.version + 1, updated_at = now()
         RETURNING ${COLUMNS}, (xmax = 0) AS created`,
        [kind, id, json],
      );
      const row = rows[0]!;
      return { record: view(row), created: row.created };
    }
    // Lock first, then compare: a concurrent writer holding the same version waits here and then
    // sees the version the first one committed, so it fails instead of overwriting.
    const current = await currentVersion(client, kind, id, true);
    if (pre.ifMatch !== undefined && (current === undefined || !matches(pre.ifMatch, current))) {
      throw preconditionFailed(kind, id, current);
    }
    if (pre.expectedVersion !== undefined) {
      if (current === undefined && pre.expectedVersion !== 0) throw notFound(kind, id);
      if ((current ?? 0) !== pre.expectedVersion) throw conflict(kind, id, current ?? 0, pre.expectedVersion);
    }
    if (current === undefined) {
      // `version: 0` in the body asks to create: the insert fails on a concurrent creator's row.
      const { rows } = await client.query<Row>(
        `INSERT INTO attributes (kind, id, attributes) VALUES ($1, $2, $3::jsonb)
         ON CONFLICT (kind, id) DO NOTHING RETURNING ${COLUMNS}`,
        [kind, id, json],
      );
      if (rows[0] === undefined) throw conflict(kind, id, (await currentVersion(client, kind, id)) ?? 0, 0);
      return { record: view(rows[0]), created: true };
    }
    const { rows } = await client.query<Row>(
      `UPDATE attributes SET attributes = $3::jsonb, version = version + 1, updated_at = now()
       WHERE kind = $1 AND id = $2 AND version = $4 RETURNING ${COLUMNS}`,
      [kind, id, json, current],
    );
    return { record: view(rows[0]!), created: false };
  }

  private async announce(client: Queryable, changes: AttributeChange[]): Promise<void> {
    if (changes.length === 0) return;
    await enqueueEvent(
      client,
      ATTRIBUTE_EVENTS_TOPIC,
      attributeEventKey(changes),
      encodeAttributeEvent(changes),
    );
  }
}

async function currentVersion(
  client: Queryable,
  kind: string,
  id: string,
  lock = false,
): Promise<number | undefined> {
  const { rows } = await client.query<{ version: string }>(
    `SELECT version FROM attributes WHERE kind = $1 AND id = $2${lock ? ' FOR UPDATE' : ''}`,
    [kind, id],
  );
  return rows[0] === undefined ? undefined : Number(rows[0].version);
}

function matches(tags: readonly string[], version: number): boolean {
  return tags.includes('*') || tags.includes(etagOf(version));
}

function notFound(kind: string, id: string): PortcullisError {
  return new PortcullisError('not_found', `no attributes for ${kind}/${id}`, {
    details: [{ field: 'params', kind, id }],
  });
}

function preconditionFailed(kind: string, id: string, current: number | undefined): PortcullisError {
  return new PortcullisError(
    'precondition_failed',
    current === undefined
      ? `${kind}/${id} does not exist, so no ETag matches`
      : `${kind}/${id} is at version ${current} (ETag ${etagOf(current)}); re-read it and retry`,
    { details: [{ field: 'headers.if-match', current: current === undefined ? null : etagOf(current) }] },
  );
}

function conflict(kind: string, id: string, current: number, expected: number): PortcullisError {
  return new PortcullisError(
    'conflict',
    `${kind}/${id} is at version ${current}, not ${expected}: it changed since it was read`,
    { details: [{ field: 'body.version', expected, current }] },
  );
}
