// The PIP's gRPC services: Identity/Authenticate for enforcement points, Attributes/Get and BatchGet for caches.
import { AuthenticationError, type PolicySet, upstreamHeaderMutations } from '@portcullis/identity';
import {
  type GrpcServer,
  type Logger,
  loadProtos,
  PortcullisError,
  serviceClient,
} from '@portcullis/runtime';
import { type AttributeRecord, type AttributeStore, keyProblem } from './attribute-store.ts';

export const PIP_PROTO = 'portcullis/pip/v1/pip.proto';
export const IDENTITY_SERVICE = 'portcullis.pip.v1.Identity';
export const ATTRIBUTES_SERVICE = 'portcullis.pip.v1.Attributes';
export const MAX_BATCH_KEYS = 1000;

interface HeaderValue {
  name: string;
  value: string;
}

interface AuthenticateRequest {
  namespace: string;
  labels: Record<string, string>;
  headers: Record<string, string>;
  query: string;
  cookies: Record<string, string>;
  repeated_headers: HeaderValue[];
}

interface RecordMessage {
  kind: string;
  id: string;
  attributes_json: string;
  version: string;
  found: boolean;
}

function recordMessage(kind: string, id: string, record: AttributeRecord | undefined): RecordMessage {
  return record === undefined
    ? { kind, id, attributes_json: '', version: '0', found: false }
    : {
        kind,
        id,
        attributes_json: JSON.stringify(record.attributes),
        version: String(record.version),
        found: true,
      };
}

function checkKey(kind: string, id: string, where: string): void {
  const problem = keyProblem(kind, id);
  if (problem !== undefined) {
    throw new PortcullisError('bad_request', `${where}.${problem.field} ${problem.message}`, {
      details: [{ field: `${where}.${problem.field}`, message: problem.message }],
    });
  }
}

/** Registers Identity and Attributes on `server`. */
export function addPipServices(
  server: GrpcServer,
  deps: { policies: PolicySet; attributes: AttributeStore; logger: Logger },
): void {
  const pkg = loadProtos([PIP_PROTO]);
  server.addService(serviceClient(pkg, IDENTITY_SERVICE).service, {
    Authenticate: async (request: AuthenticateRequest) => {
      if (!request.namespace) throw new PortcullisError('bad_request', 'namespace is required');
      const headers: Record<string, string | string[]> = { ...request.headers };
      for (const { name, value } of request.repeated_headers) {
        const key = name.toLowerCase();
        const prior = headers[key];
        headers[key] = prior === undefined ? [value] : [...(Array.isArray(prior) ? prior : [prior]), value];
      }
      const hasCookies = Object.keys(request.cookies).length > 0;
      try {
        const outcome = await deps.policies.authenticate({
          namespace: request.namespace,
          labels: request.labels,
          headers,
          query: request.query,
          ...(hasCookies ? { cookies: request.cookies } : {}),
        });
        const mutations = upstreamHeaderMutations(outcome);
        const upstream = {
          set_headers: mutations.set.map(([name, value]) => ({ name, value })),
          remove_headers: [...mutations.remove],
          remove_query_params: [...mutations.removeQueryParams],
        };
        if (outcome.anonymous) return { outcome: 'ANONYMOUS', ...upstream };
        return {
          outcome: 'AUTHENTICATED',
          principal: outcome.principal ?? '',
          claims_json: JSON.stringify(outcome.claims),
          audiences: [...outcome.audiences],
          presenter: outcome.presenter ?? '',
          ...upstream,
        };
      } catch (err) {
        if (!(err instanceof AuthenticationError)) throw err;
        deps.logger.info(
          { code: err.code, issuer: err.issuer, reason: err.message, rpc: 'Authenticate' },
          'token rejected',
        );
        return {
          outcome: 'REJECTED',
          error_code: err.code,
          error_message: err.message,
          http_status: err.httpStatus,
        };
      }
    },
  });
  server.addService(serviceClient(pkg, ATTRIBUTES_SERVICE).service, {
    Get: async (request: { kind: string; id: string }) => {
      checkKey(request.kind, request.id, 'request');
      const record = await deps.attributes.get(request.kind, request.id);
      if (record === undefined)
        throw new PortcullisError('not_found', `no attributes for ${request.kind}/${request.id}`);
      return recordMessage(request.kind, request.id, record);
    },
    BatchGet: async (request: { keys: { kind: string; id: string }[] }) => {
      if (request.keys.length > MAX_BATCH_KEYS) {
        throw new PortcullisError(
          'bad_request',
          `at most ${MAX_BATCH_KEYS} keys per BatchGet, got ${request.keys.length}`,
        );
      }
      request.keys.forEach((k, i) => {
        checkKey(k.kind, k.id, `keys[${i}]`);
      });
      const records = await deps.attributes.batchGet(request.keys);
      return { records: request.keys.map((k, i) => recordMessage(k.kind, k.id, records[i])) };
    },
  });
}
