// REST routes for attributes: versioned records with ETags, bulk import of JSON lines, and per-kind schemas.
import { PortcullisError } from '@portcullis/runtime';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { importAttributes } from './attribute-import.ts';
import { etagOf, KIND_PATTERN, MAX_ID_LENGTH, type WritePreconditions } from './attribute-store.ts';
import { parseIfMatch } from './http-preconditions.ts';
import type { PipServices } from './pip-app.ts';

const KindParams = Type.Object({ kind: Type.String({ pattern: KIND_PATTERN }) });
const RecordParams = Type.Object({
  kind: Type.String({ pattern: KIND_PATTERN }),
  id: Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH, pattern: '^[^\\u0000-\\u001f\\u007f]+$' }),
});
type RecordParams = { kind: string; id: string };

const PutBody = Type.Object(
  {
    attributes: Type.Record(Type.String(), Type.Unknown(), { description: 'The attributes object.' }),
    version: Type.Optional(
      Type.Integer({
        minimum: 0,
        description:
          'The version this write was based on (0: create only); 409 when the record has moved on.',
      }),
    ),
  },
  { additionalProperties: false },
);
type PutBody = { attributes: Record<string, unknown>; version?: number };

const SchemaBody = Type.Object(
  {
    schema: Type.Record(Type.String(), Type.Unknown(), {
      description: 'A JSON Schema (draft-07 or 2019-09 subset ajv accepts).',
    }),
  },
  { additionalProperties: false },
);

/** JSON-lines media types accepted by the import. */
export const JSON_LINES_TYPES = [
  'application/x-ndjson',
  'application/jsonl',
  'application/json-lines',
  'application/jsonlines',
];

function preconditions(
  headers: Record<string, string | string[] | undefined>,
  version?: number,
): WritePreconditions {
  const ifMatch = headers['if-match'];
  const ifNoneMatch = headers['if-none-match'];
  const pre: WritePreconditions = {};
  if (typeof ifMatch === 'string') pre.ifMatch = parseIfMatch(ifMatch);
  if (typeof ifNoneMatch === 'string') {
    if (ifNoneMatch.trim() !== '*') {
      throw new PortcullisError('bad_request', 'a write takes only `If-None-Match: *` (create only)', {
        details: [{ field: 'headers.if-none-match', message: 'must be *' }],
      });
    }
    pre.ifNoneMatch = true;
  }
  if (version !== undefined) pre.expectedVersion = version;
  return pre;
}

export async function registerAttributeRoutes(app: FastifyInstance, pip: PipServices): Promise<void> {
  const viewer = pip.tokens.require('viewer');
  const author = pip.tokens.require('author');
  const { attributes, schemas, config } = pip;

  app.put<{ Params: RecordParams; Body: PutBody }>(
    '/v1/attributes/:kind/:id',
    {
      onRequest: author,
      schema: {
        tags: ['attributes'],
        summary: 'Create or replace the attributes of a subject or resource',
        description:
          'Answers the record with its `version` and `ETag: "<version>"` (201 when created). ' +
          'Concurrency: `If-Match` with a stale ETag → 412 `precondition_failed`; `If-None-Match: *` on an ' +
          'existing record → 412; `version` in the body that is not the current one → 409 `conflict`. ' +
          'Without any of them the write applies on top of the current record (last writer wins). ' +
          'A kind with a schema validates the attributes (400 `validation_failed`, details name the fields). Role: author.',
        params: RecordParams,
        body: PutBody,
      },
    },
    async (request, reply) => {
      const { kind, id } = request.params;
      const { record, created } = await attributes.put(
        kind,
        id,
        request.body.attributes,
        preconditions(request.headers, request.body.version),
      );
      return reply
        .code(created ? 201 : 200)
        .header('etag', etagOf(record.version))
        .send(record);
    },
  );

  app.get<{ Params: RecordParams }>(
    '/v1/attributes/:kind/:id',
    {
      onRequest: viewer,
      schema: {
        tags: ['attributes'],
        summary: 'Read a record (ETag; `If-None-Match` answers 304)',
        description: 'Role: viewer.',
        params: RecordParams,
      },
    },
    async (request, reply) => {
      const { kind, id } = request.params;
      const record = await attributes.get(kind, id);
      if (record === undefined) throw new PortcullisError('not_found', `no attributes for ${kind}/${id}`);
      const etag = etagOf(record.version);
      const inm = request.headers['if-none-match'];
      if (typeof inm === 'string' && (parseIfMatch(inm).includes(etag) || inm.trim() === '*')) {
        return reply.code(304).header('etag', etag).send();
      }
      return reply.header('etag', etag).send(record);
    },
  );

  app.delete<{ Params: RecordParams }>(
    '/v1/attributes/:kind/:id',
    {
      onRequest: author,
      schema: {
        tags: ['attributes'],
        summary: 'Delete a record',
        description: '404 when absent; `If-Match` with a stale ETag → 412. Role: author.',
        params: RecordParams,
      },
    },
    async (request, reply) => {
      const { kind, id } = request.params;
      await attributes.delete(kind, id, preconditions(request.headers));
      return reply.code(204).send();
    },
  );

  await app.register(async (scope) => {
    // The body reaches the handler as the raw stream: lines are parsed and written as they arrive.
    scope.addContentTypeParser(JSON_LINES_TYPES, (_request, payload, done) => done(null, payload));
    scope.post(
      '/v1/attributes::import',
      {
        onRequest: author,
        bodyLimit: config.PIP_MAX_IMPORT,
        schema: {
          tags: ['attributes'],
          summary: 'Bulk import of JSON lines `{"kind", "id", "attributes"}` (upserts)',
          description:
            'Content-Type `application/x-ndjson` (or `application/jsonl`). Streamed and written in multi-row batches, ' +
            'each committed with one change event. Not all-or-nothing: each bad line is reported with its line ' +
            'number and skipped, the good ones are imported; the answer is 200 ' +
            '`{imported, failed, errors: [{line, field?, message}], errors_truncated}`. Role: author.',
        },
      },
      async (request) => {
        const body = request.body as AsyncIterable<Buffer>;
        const result = await importAttributes(attributes, body, {
          maxBytes: config.PIP_MAX_IMPORT,
          maxAttributeBytes: config.PIP_MAX_ATTRIBUTES,
        });
        pip.metrics.importedLines.inc({ outcome: 'imported' }, result.imported);
        pip.metrics.importedLines.inc({ outcome: 'failed' }, result.failed);
        request.log.info({ imported: result.imported, failed: result.failed }, 'attribute import');
        return result;
      },
    );
  });

  app.put<{ Params: { kind: string }; Body: { schema: Record<string, unknown> } }>(
    '/v1/attribute-schemas/:kind',
    {
      onRequest: author,
      schema: {
        tags: ['attribute-schemas'],
        summary: 'Set the JSON Schema that attributes of a kind must match',
        description:
          'Applies to writes from now on (existing records are not re-checked). 400 when the schema does not compile. Role: author.',
        params: KindParams,
        body: SchemaBody,
      },
    },
    async (request, reply) => {
      const { record, created } = await schemas.put(request.params.kind, request.body.schema);
      return reply.code(created ? 201 : 200).send(record);
    },
  );

  app.get<{ Params: { kind: string } }>(
    '/v1/attribute-schemas/:kind',
    {
      onRequest: viewer,
      schema: {
        tags: ['attribute-schemas'],
        summary: 'Read the schema of a kind',
        description: 'Role: viewer.',
        params: KindParams,
      },
    },
    async (request) => {
      const record = await schemas.get(request.params.kind);
      if (record === undefined)
        throw new PortcullisError('not_found', `kind ${request.params.kind} has no schema`);
      return record;
    },
  );

  app.delete<{ Params: { kind: string } }>(
    '/v1/attribute-schemas/:kind',
    {
      onRequest: author,
      schema: {
        tags: ['attribute-schemas'],
        summary: 'Remove the schema of a kind',
        description: 'Role: author.',
        params: KindParams,
      },
    },
    async (request, reply) => {
      if (!(await schemas.delete(request.params.kind))) {
        throw new PortcullisError('not_found', `kind ${request.params.kind} has no schema`);
      }
      return reply.code(204).send();
    },
  );
}
