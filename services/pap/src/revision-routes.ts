// REST routes for revisions: create (JSON or OPA bundle tarball), list, read, evaluate.
import type { FastifyInstance } from 'fastify';
import { principalOf, requireRole } from './auth.ts';
import { BUNDLE_MEDIA_TYPES } from './compile/index.ts';
import type { PapServices } from './pap-app.ts';
import { createRevision, type RevisionSource } from './revision-creation.ts';
import {
  BEARER,
  BundleParams,
  BundleUpload,
  CreateRevisionJson,
  CreateRevisionQuery,
  EvaluateBody,
  EvaluateResult,
  errorResponses,
  RevisionCreated,
  RevisionDetail,
  RevisionList,
  RevisionParams,
} from './schemas.ts';

export async function registerRevisionRoutes(app: FastifyInstance, pap: PapServices): Promise<void> {
  // The tarball parser lives in this scope only: no other route accepts a binary body.
  await app.register(async (scope) => {
    scope.addContentTypeParser(
      [...BUNDLE_MEDIA_TYPES],
      { parseAs: 'buffer', bodyLimit: pap.config.PAP_MAX_BODY },
      // Handed on as a latin1 string (one char per byte, lossless) so the route's schema can be
      // OpenAPI's `type: string, format: binary`, which ajv checks without a strict-mode warning.
      (_request, body, done) => done(null, (body as Buffer).toString('latin1')),
    );
    const upload = { schema: BundleUpload };
    scope.post<{ Params: BundleParams; Querystring: CreateRevisionQuery; Body: CreateRevisionJson | string }>(
      '/v1/bundles/:bundle/revisions',
      {
        onRequest: requireRole(pap.tokens, 'author'),
        schema: {
          tags: ['revisions'],
          summary: 'Create a revision from the whole bundle content',
          description:
            'Checks (`opa check`, strict by default), tests (`opa test`) and compiles (`opa build -t wasm`) the ' +
            'content and stores it as an immutable revision. The same content as an existing revision returns ' +
            'that revision with 200; nothing is stored when a step fails. Role: author.',
          security: BEARER,
          params: BundleParams,
          querystring: CreateRevisionQuery,
          body: {
            content: {
              'application/json': { schema: CreateRevisionJson },
              ...Object.fromEntries(BUNDLE_MEDIA_TYPES.map((t) => [t, upload])),
            },
          },
          response: {
            200: { ...RevisionCreated, description: 'The same content is already revision N.' },
            201: { ...RevisionCreated, description: 'Created.' },
            ...errorResponses(400, 413, 415, 422, 504),
          },
        },
      },
      async (request, reply) => {
        const principal = principalOf(request);
        const { bundle } = request.params;
        let source: RevisionSource;
        if (typeof request.body === 'string') {
          const { strict, entrypoints } = request.query;
          const read = await pap.readUpload(
            Buffer.from(request.body, 'latin1'),
            request.headers['content-type'] ?? '',
            {
              maxBytes: pap.config.PAP_MAX_UNPACKED,
              ...(entrypoints === undefined
                ? {}
                : { entrypoints: entrypoints.split(',').filter((e) => e !== '') }),
            },
          );
          source = {
            modules: read.modules,
            data: read.data,
            entrypoints: read.entrypoints,
            ...(strict === undefined ? {} : { strict: strict === 'true' }),
          };
        } else {
          const body = request.body;
          source = {
            modules: body.modules,
            data: body.data ?? {},
            entrypoints: body.entrypoints,
            ...(body.strict === undefined ? {} : { strict: body.strict }),
          };
        }
        const { created, revision } = await createRevision(
          pap.creation,
          bundle,
          source,
          principal.name,
          request.id,
        );
        if (created) void reply.header('location', `/v1/bundles/${bundle}/revisions/${revision.revision}`);
        return reply.code(created ? 201 : 200).send(revision);
      },
    );
  });

  app.get<{ Params: BundleParams }>(
    '/v1/bundles/:bundle/revisions',
    {
      onRequest: requireRole(pap.tokens, 'viewer'),
      schema: {
        tags: ['revisions'],
        summary: 'List the revisions of a bundle, newest first',
        description: 'Role: viewer.',
        security: BEARER,
        params: BundleParams,
        response: { 200: RevisionList, ...errorResponses(400, 404) },
      },
    },
    async (request) => ({ revisions: await pap.store.listRevisions(request.params.bundle) }),
  );

  app.get<{ Params: RevisionParams }>(
    '/v1/bundles/:bundle/revisions/:rev',
    {
      onRequest: requireRole(pap.tokens, 'viewer'),
      schema: {
        tags: ['revisions'],
        summary: 'Read one revision: sources, data, manifest, digests, author, OPA version',
        description: 'Role: viewer.',
        security: BEARER,
        params: RevisionParams,
        response: { 200: RevisionDetail, ...errorResponses(400, 404) },
      },
    },
    async (request) => pap.store.getRevision(request.params.bundle, Number(request.params.rev)),
  );

  app.post<{ Params: RevisionParams; Body: EvaluateBody }>(
    '/v1/bundles/:bundle/revisions/:rev/evaluate',
    {
      onRequest: requireRole(pap.tokens, 'viewer'),
      schema: {
        tags: ['revisions'],
        summary: 'Evaluate a revision on an input (before or after activating it)',
        description:
          'Runs the revision’s compiled policy.wasm in-process through the engine. `result` is absent when ' +
          'the entrypoint is undefined for the input. Role: viewer (evaluation changes nothing).',
        security: BEARER,
        params: RevisionParams,
        body: EvaluateBody,
        response: { 200: EvaluateResult, ...errorResponses(400, 404, 413, 415) },
      },
    },
    async (request) => {
      const { bundle, rev } = request.params;
      const revision = await pap.store.getEvaluable(bundle, Number(rev));
      const out = await pap.evaluator.evaluate(revision, request.body.entrypoint, request.body.input);
      return {
        ...(out.result === undefined ? {} : { result: out.result }),
        revision: out.revision,
        eval_ns: out.evalNs,
      };
    },
  );
}
