// Optional JSON Schemas per attribute kind: stored in Postgres, compiled once per version with ajv.
import { type Pool, PortcullisError } from '@portcullis/runtime';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { Queryable } from './pip-outbox.ts';

export interface AttributeSchemaRecord {
  kind: string;
  schema: Record<string, unknown>;
  version: number;
  updatedAt: string;
}

export type AttributeProblem = { field: string; message: string };

interface SchemaRow {
  kind: string;
  schema: Record<string, unknown>;
  version: string;
  updated_at: Date;
}

/** A kind's schema as a validator; `version` tells a cached one from a newer stored one. */
interface Compiled {
  version: number;
  validate: ValidateFunction;
}

// Schemas are written by authors (trusted, size-limited by the body limit); a bound keeps a long-lived
// process from accumulating compiled functions for kinds that come and go.
const MAX_COMPILED = 256;

export class AttributeSchemas {
  // strict: false accepts keywords ajv does not know (annotations such as `examples` or vendor fields).
  private readonly ajv = new Ajv({ allErrors: true, strict: false });
  private readonly compiled = new Map<string, Compiled>();

  constructor(private readonly pool: Pool) {}

  /** Stores a kind's schema after checking that it compiles; answers the stored record. */
  async put(kind: string, schema: unknown): Promise<{ record: AttributeSchemaRecord; created: boolean }> {
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
      throw new PortcullisError('validation_failed', 'body.schema must be a JSON Schema object', {
        details: [{ field: 'body.schema', message: 'must be an object' }],
      });
    }
    let validate: ValidateFunction;
    try {
      validate = this.ajv.compile(schema);
    } catch (err) {
      throw new PortcullisError(
        'validation_failed',
        `body.schema is not a valid JSON Schema: ${(err as Error).message}`,
        {
          details: [{ field: 'body.schema', message: (err as Error).message }],
          cause: err,
        },
      );
    }
    const { rows } = await this.pool.query<SchemaRow & { created: boolean }>(
      `INSERT INTO attribute_schemas (kind, schema) VALUES ($1, $2::jsonb)
       ON CONFLICT (kind) DO UPDATE SET schema = EXCLUDED.schema, version = attribute_schemas.version + 1, updated_at = now()
       RETURNING kind, schema, version, updated_at, (xmax = 0) AS created`,
      [kind, JSON.stringify(schema)],
    );
    const row = rows[0]!;
    this.remember(kind, { version: Number(row.version), validate });
    return { record: view(row), created: row.created };
  }

  async get(kind: string): Promise<AttributeSchemaRecord | undefined> {
    const { rows } = await this.pool.query<SchemaRow>(
      'SELECT kind, schema, version, updated_at FROM attribute_schemas WHERE kind = $1',
      [kind],
    );
    return rows[0] === undefined ? undefined : view(rows[0]);
  }

  async delete(kind: string): Promise<boolean> {
    const { rowCount } = await this.pool.query('DELETE FROM attribute_schemas WHERE kind = $1', [kind]);
    this.compiled.delete(kind);
    return (rowCount ?? 0) > 0;
  }

  /**
   * The validators of `kinds` as stored now (read through `db`, so inside a transaction the check
   * and the write see the same schema); kinds without a schema are absent from the map.
   */
  async validators(db: Queryable, kinds: readonly string[]): Promise<Map<string, ValidateFunction>> {
    const out = new Map<string, ValidateFunction>();
    if (kinds.length === 0) return out;
    const { rows } = await db.query<{ kind: string; version: string }>(
      'SELECT kind, version FROM attribute_schemas WHERE kind = ANY($1::text[])',
      [kinds],
    );
    const stale: string[] = [];
    for (const row of rows) {
      const cached = this.compiled.get(row.kind);
      if (cached !== undefined && cached.version === Number(row.version)) out.set(row.kind, cached.validate);
      else stale.push(row.kind);
    }
    if (stale.length > 0) {
      const { rows: full } = await db.query<SchemaRow>(
        'SELECT kind, schema, version, updated_at FROM attribute_schemas WHERE kind = ANY($1::text[])',
        [stale],
      );
      for (const row of full) {
        const validate = this.ajv.compile(row.schema);
        this.remember(row.kind, { version: Number(row.version), validate });
        out.set(row.kind, validate);
      }
    }
    return out;
  }

  private remember(kind: string, compiled: Compiled): void {
    if (this.compiled.size >= MAX_COMPILED && !this.compiled.has(kind)) this.compiled.clear();
    this.compiled.set(kind, compiled);
    // The old function is dropped from ajv's own cache too, or every schema version would stay in memory.
    this.ajv.removeSchema();
  }
}

/** What a validator found, as `{field, message}` with the field path from `attributes`. */
export function schemaProblems(
  errors: ErrorObject[] | null | undefined,
  prefix = 'attributes',
): AttributeProblem[] {
  return (errors ?? []).map((e) => {
    const path = e.instancePath
      .split('/')
      .slice(1)
      .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
    const field = [prefix, ...path].join('.');
    const missing =
      e.keyword === 'required'
        ? `.${String((e.params as { missingProperty?: unknown }).missingProperty)}`
        : '';
    return { field: `${field}${missing}`, message: e.message ?? 'invalid' };
  });
}

function view(row: SchemaRow): AttributeSchemaRecord {
  return {
    kind: row.kind,
    schema: row.schema,
    version: Number(row.version),
    updatedAt: row.updated_at.toISOString(),
  };
}
