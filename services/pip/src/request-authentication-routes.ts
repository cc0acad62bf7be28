// REST routes for RequestAuthentication resources (JSON or YAML bodies) and for authenticating a request against them.
import { type AuthenticationOutcome, upstreamHeaderMutations } from '@portcullis/identity';
import { PortcullisError } from '@portcullis/runtime';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { callerOf } from './api-tokens.ts';
import { parseIfMatch } from './http-preconditions.ts';
import type { PipServices } from './pip-app.ts';
import { acceptResource, etagOf } from './request-authentication-store.ts';

const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

const ResourceParams = Type.Object({
  namespace: Type.String({ pattern: DNS_LABEL, maxLength: 63 }),
  name: Type.String({ pattern: DNS_SUBDOMAIN, maxLength: 253 }),
});
type ResourceParams = { namespace: string; name: string };

const ListQuery = Type.Object({
  namespace: Type.Optional(Type.String({ pattern: DNS_LABEL, maxLength: 63 })),
});

const StringMap = Type.Record(Type.String(), Type.String());
const HeaderMap = Type.Record(
  Type.String(),
  Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 64 })]),
);

export const AuthenticateBody = Type.Object(
  {
    namespace: Type.String({
      pattern: DNS_LABEL,
      maxLength: 63,
      description: 'Namespace of the receiving workload.',
    }),
    labels: Type.Optional(StringMap),
    headers: HeaderMap,
    query: Type.Optional(
      Type.Union([Type.String({ maxLength: 65_536 }), HeaderMap], {
        description: 'The query string (without "?") or a map of parameters.',
      }),
    ),
    cookies: Type.Optional(StringMap),
  },
  { additionalProperties: false },
);
type AuthenticateBody = {
  namespace: string;
  labels?: Record<string, string>;
  headers: Record<string, string | string[]>;
  query?: string | Record<string, string | string[]>;
  cookies?: Record<string, string>;
};

/** The answer of POST /v1/authenticate: Istio's request.auth.* plus what to change upstream. */
export function authenticationView(outcome: AuthenticationOutcome): Record<string, unknown> {
  const mutations = upstreamHeaderMutations(outcome);
  const upstream = {
    set: Object.fromEntries(mutations.set),
    remove: mutations.remove,
    remove_query_params: mutations.removeQueryParams,
  };
  if (outcome.anonymous) return { anonymous: true, upstream };
  return {
    principal: outcome.principal ?? null,
    claims: outcome.claims,
    audiences: outcome.audiences,
    presenter: outcome.presenter ?? null,
    upstream,
  };
}

export async function registerRequestAuthenticationRoutes(
  app: FastifyInstance,
  pip: PipServices,
): Promise<void> {
  const viewer = pip.tokens.require('viewer');
  const author = pip.tokens.require('author');

  app.put<{ Params: ResourceParams; Body: unknown }>(
    '/v1/request-authentications/:namespace/:name',
    {
      onRequest: author,
      schema: {
        tags: ['request-authentications'],
        summary: 'Create or replace a RequestAuthentication (security.istio.io/v1 or v1beta1)',
        description:
          'Body: the Istio resource as JSON or YAML (`application/yaml`, `application/x-yaml`, `text/yaml`). ' +
          'metadata.namespace and metadata.name may be omitted; if given they must match the path. ' +
          '`If-Match` makes the write conditional (412). Errors: `invalid_resource` with details naming each field. Role: author.',
        params: ResourceParams,
      },
    },
    async (request, reply) => {
      const { namespace, name } = request.params;
      const { document } = acceptResource(request.body, namespace, name);
      const ifMatch = request.headers['if-match'];
      const { record, created } = await pip.requestAuthentications.put(
        namespace,
        name,
        document,
        callerOf(request).name,
        ifMatch === undefined ? undefined : parseIfMatch(ifMatch),
      );
      pip.sync.applyLocal(record);
      return reply
        .code(created ? 201 : 200)
        .header('etag', etagOf(record.version))
        .send(record);
    },
  );

  app.get<{ Params: ResourceParams }>(
    '/v1/request-authentications/:namespace/:name',
    {
      onRequest: viewer,
      schema: {
        tags: ['request-authentications'],
        summary: 'Read a RequestAuthentication as stored, with its version (also the ETag)',
        description: 'Role: viewer.',
        params: ResourceParams,
      },
    },
    async (request, reply) => {
      const { namespace, name } = request.params;
      const record = await pip.requestAuthentications.get(namespace, name);
      if (record === undefined)
        throw new PortcullisError('not_found', `no RequestAuthentication ${namespace}/${name}`);
      return reply.header('etag', etagOf(record.version)).send(record);
    },
  );

  app.delete<{ Params: ResourceParams }>(
    '/v1/request-authentications/:namespace/:name',
    {
      onRequest: author,
      schema: {
        tags: ['request-authentications'],
        summary: 'Delete a RequestAuthentication',
        description: '404 when absent; `If-Match` makes it conditional (412). Role: author.',
        params: ResourceParams,
      },
    },
    async (request, reply) => {
      const { namespace, name } = request.params;
      const ifMatch = request.headers['if-match'];
      await pip.requestAuthentications.delete(
        namespace,
        name,
        ifMatch === undefined ? undefined : parseIfMatch(ifMatch),
      );
      pip.sync.applyLocal({ namespace, name, deleted: true });
      return reply.code(204).send();
    },
  );

  app.get<{ Querystring: { namespace?: string } }>(
    '/v1/request-authentications',
    {
      onRequest: viewer,
      schema: {
        tags: ['request-authentications'],
        summary: 'List RequestAuthentications, of one namespace or of all',
        description: 'Ordered by namespace, then name. Role: viewer.',
        querystring: ListQuery,
      },
    },
    async (request) => ({ items: await pip.requestAuthentications.list(request.query.namespace) }),
  );

  app.post<{ Body: AuthenticateBody }>(
    '/v1/authenticate',
    {
      schema: {
        tags: ['authenticate'],
        summary: 'Authenticate a request with the RequestAuthentications in scope for its workload',
        description:
          '200 with the identity (`principal`, `claims`, `audiences`, `presenter`), or `{"anonymous": true}` ' +
          'when the request carries no token; 401 `{code, message}` naming why a token was refused ' +
          '(403 for `wrong_audience`). `upstream` says which headers to set and remove and which query ' +
          'parameters to drop before forwarding. A data-plane call, like gRPC Identity/Authenticate: no bearer token needed.',
        body: AuthenticateBody,
      },
    },
    async (request) => {
      const { namespace, labels, headers, query, cookies } = request.body;
      const outcome = await pip.policies.authenticate({
        namespace,
        headers,
        ...(labels === undefined ? {} : { labels }),
        ...(query === undefined ? {} : { query }),
        ...(cookies === undefined ? {} : { cookies }),
      });
      return authenticationView(outcome);
    },
  );
}
