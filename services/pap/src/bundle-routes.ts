// REST routes for bundles: list, read (with the activation ETag), activate under If-Match, download.
import { toPortcullisError } from '@portcullis/runtime';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { activateRevision } from './activation.ts';
import { principalOf, requireRole } from './auth.ts';
import type { PapServices } from './pap-app.ts';
import {
  ActivateBody,
  ActivationView,
  BEARER,
  BundleList,
  BundleParams,
  BundleView,
  DownloadQuery,
  errorResponses,
  IfMatchHeaders,
} from './schemas.ts';

/** Whether an If-None-Match header names `etag` (weak comparison, as RFC 9110 prescribes for it). */
export function noneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''))
    .some((t) => t === '*' || t === etag);
}

export async function registerBundleRoutes(app: FastifyInstance, pap: PapServices): Promise<void> {
  app.get(
    '/v1/bundles',
    {
      onRequest: requireRole(pap.tokens, 'viewer'),
      schema: {
        tags: ['bundles'],
        summary: 'List bundles with their active revisions',
        description: 'Role: viewer.',
        security: BEARER,
        response: { 200: BundleList, ...errorResponses() },
      },
    },
    async () => ({ bundles: await pap.store.listBundles() }),
  );

  app.get<{ Params: BundleParams }>(
    '/v1/bundles/:bundle',
    {
      onRequest: requireRole(pap.tokens, 'viewer'),
      schema: {
        tags: ['bundles'],
        summary: 'Read a bundle: entrypoints, strict flag, active revision',
        description:
          'The `ETag` header names the current activation; send it as `If-Match` to activate. Role: viewer.',
        security: BEARER,
        params: BundleParams,
        response: { 200: BundleView, ...errorResponses(400, 404) },
      },
    },
    async (request, reply) => {
      const bundle = await pap.store.getBundle(request.params.bundle);
      return reply.header('etag', bundle.etag).send(bundle);
    },
  );

  app.put<{ Params: BundleParams; Body: ActivateBody; Headers: { 'if-match'?: string } }>(
    '/v1/bundles/:bundle/active',
    {
      onRequest: requireRole(pap.tokens, 'publisher'),
      schema: {
        tags: ['bundles'],
        summary: 'Activate a revision (rollback is activating an older one)',
        description:
          'Needs `If-Match` with the bundle’s current ETag (428 without, 412 when another activation came ' +
          'first). Writes the activation and its outbox event in one transaction. Role: publisher.',
        security: BEARER,
        params: BundleParams,
        headers: IfMatchHeaders,
        body: ActivateBody,
        response: { 200: ActivationView, ...errorResponses(400, 404, 412, 413, 415, 428) },
      },
    },
    async (request, reply) => {
      const activation = await activateRevision(pap.pool, {
        bundle: request.params.bundle,
        revision: request.body.revision,
        ifMatch: request.headers['if-match'],
        actor: principalOf(request).name,
        requestId: request.id,
      }).catch((err: unknown) => {
        pap.metrics.activations.inc({ outcome: toPortcullisError(err).code });
        throw err;
      });
      pap.metrics.activations.inc({ outcome: 'activated' });
      return reply.header('etag', activation.etag).send(activation);
    },
  );

  app.get<{ Params: BundleParams; Querystring: { target?: 'wasm' | 'rego' } }>(
    '/v1/bundles/:bundle/bundle.tar.gz',
    {
      onRequest: requireRole(pap.tokens, 'viewer'),
      schema: {
        tags: ['bundles'],
        summary: 'Download the active revision as an OPA bundle',
        description:
          'The ETag is the archive’s sha256 in quotes; `If-None-Match` with it answers 304, which is how a ' +
          'polling `opa run` learns nothing changed. `?target=rego` serves the revision without policy.wasm, ' +
          'for an opa that cannot execute WebAssembly. Role: viewer.',
        security: BEARER,
        params: BundleParams,
        querystring: DownloadQuery,
        response: {
          200: Type.Unsafe({ type: 'string', format: 'binary', description: 'The bundle .tar.gz.' }),
          304: Type.Null({ description: 'Not modified.' }),
          ...errorResponses(400, 404),
        },
      },
    },
    async (request, reply) => {
      const target = request.query.target ?? 'wasm';
      const archive = await pap.store.activeArchive(request.params.bundle, target);
      const etag = `"${archive.digest}"`;
      void reply
        .header('etag', etag)
        .header('cache-control', 'no-cache')
        .header('x-portcullis-revision', String(archive.revision));
      if (noneMatchHits(request.headers['if-none-match'], etag)) return reply.code(304).send();
      return reply
        .type('application/gzip')
        .header(
          'content-disposition',
          `attachment; filename="${request.params.bundle}${target === 'rego' ? '-rego' : ''}.tar.gz"`,
        )
        .send(archive.bytes);
    },
  );
}
