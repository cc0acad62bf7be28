// Test harness: a grpc-js server with the Authorization service on 127.0.0.1 and a client built from Envoy's protos, standing in for Envoy.
import * as grpc from '@grpc/grpc-js';
import {
  AuthorizationClient,
  type AuthorizationServiceOptions,
  authorizationServiceDefinition,
  type CheckRequest,
  type CheckResponse,
  createAuthorizationService,
  type HeaderValueOption,
  structToJson,
} from '../src/index.ts';

export interface Harness {
  check(
    request: CheckRequest,
    options?: { deadline?: Date; metadata?: grpc.Metadata },
  ): Promise<CheckResponse>;
  close(): void;
}

export async function startAuthorizationServer(options: AuthorizationServiceOptions): Promise<Harness> {
  const server = new grpc.Server();
  server.addService(authorizationServiceDefinition, createAuthorizationService(options));
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    );
  });
  const client = new AuthorizationClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = client['Check'] as unknown as (
    request: CheckRequest,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: (err: grpc.ServiceError | null, response?: CheckResponse) => void,
  ) => grpc.ClientUnaryCall;
  return {
    check: (request, opts = {}) =>
      new Promise((resolve, reject) => {
        call.call(
          client,
          request,
          opts.metadata ?? new grpc.Metadata(),
          opts.deadline ? { deadline: opts.deadline } : {},
          (err, response) => (err ? reject(err) : resolve(response!)),
        );
      }),
    close: () => {
      client.close();
      server.forceShutdown();
    },
  };
}

/** A CheckRequest as Envoy sends it after a trip through the wire (proto-loader's decoded shape). */
export function overTheWire(request: CheckRequest): CheckRequest {
  const method = authorizationServiceDefinition['Check']!;
  return method.requestDeserialize(method.requestSerialize(request)) as CheckRequest;
}

/** A CheckResponse reduced to what Envoy acts on, for readable expectations. */
export interface ResponseView {
  code: number | undefined;
  message: string | undefined;
  kind: 'ok_response' | 'denied_response' | 'none';
  ok?: {
    headers: [string, string][];
    headersToRemove: string[];
    responseHeadersToAdd: [string, string][];
    queryParametersToSet: [string, string][];
    queryParametersToRemove: string[];
  };
  denied?: { status: string | number | undefined; headers: [string, string][]; body: string };
  metadata: Record<string, unknown> | null;
}

export function view(response: CheckResponse): ResponseView {
  const pairs = (options: readonly HeaderValueOption[]): [string, string][] =>
    options.map((o) => {
      // OPA-Envoy never sets append nor append_action (0 is the enum's default); neither do we.
      if (o.append != null) throw new Error(`unexpected append on ${o.header?.key}`);
      if (o.append_action !== undefined && o.append_action !== 'APPEND_IF_EXISTS_OR_ADD') {
        throw new Error(`unexpected append_action on ${o.header?.key}`);
      }
      return [o.header?.key ?? '', o.header?.value ?? ''];
    });
  const out: ResponseView = {
    code: response.status?.code,
    message: response.status?.message,
    kind: response.http_response ?? 'none',
    metadata: response.dynamic_metadata ? structToJson(response.dynamic_metadata) : null,
  };
  if (response.http_response === 'ok_response' && response.ok_response) {
    const ok = response.ok_response;
    out.ok = {
      headers: pairs(ok.headers),
      headersToRemove: ok.headers_to_remove,
      responseHeadersToAdd: pairs(ok.response_headers_to_add),
      queryParametersToSet: ok.query_parameters_to_set.map((q) => [q.key, q.value]),
      queryParametersToRemove: ok.query_parameters_to_remove,
    };
  }
  if (response.http_response === 'denied_response' && response.denied_response) {
    const denied = response.denied_response;
    out.denied = { status: denied.status?.code, headers: pairs(denied.headers), body: denied.body };
  }
  return out;
}
