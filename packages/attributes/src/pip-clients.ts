// gRPC clients of the PIP: Attributes/BatchGet as an AttributeSource, Identity/Authenticate as an IdentitySource.
import {
  AUTHENTICATION_ERROR_CODES,
  AuthenticationError,
  type AuthenticationErrorCode,
  type AuthenticationRequest,
} from '@portcullis/identity';
import { grpc, loadProtos, serviceClient, unary } from '@portcullis/runtime';
import type { AttributeKey, AttributeSource, AttributeValue } from './attribute-cache.ts';
import type { IdentityOutcome, IdentitySource } from './enrichment.ts';

const PIP_PROTO = 'portcullis/pip/v1/pip.proto';

export interface PipClientOptions {
  /** `host:port` of the PIP's gRPC server. */
  address: string;
  /** Deadline of each call (default 2 s). */
  deadlineMs?: number;
  credentials?: grpc.ChannelCredentials;
}

let loaded: grpc.GrpcObject | undefined;
function pipPackage(): grpc.GrpcObject {
  loaded ??= loadProtos([PIP_PROTO]);
  return loaded;
}

interface RecordMessage {
  attributes_json: string;
  version: string;
  found: boolean;
}

/** Fetches attributes from the PIP; failures reject with the runtime's PortcullisError (`unavailable`, `timeout`, …). */
export class GrpcAttributeSource implements AttributeSource {
  private readonly client: grpc.Client;
  private readonly deadlineMs: number;

  constructor(options: PipClientOptions) {
    const Client = serviceClient(pipPackage(), 'portcullis.pip.v1.Attributes');
    this.client = new Client(options.address, options.credentials ?? grpc.credentials.createInsecure());
    this.deadlineMs = options.deadlineMs ?? 2000;
  }

  async batchGet(keys: readonly AttributeKey[]): Promise<(AttributeValue | undefined)[]> {
    const response = await unary<{ keys: AttributeKey[] }, { records: RecordMessage[] }>(
      this.client,
      'BatchGet',
      { keys: keys.map((k) => ({ kind: k.kind, id: k.id })) },
      { deadlineMs: this.deadlineMs },
    );
    return response.records.map((r) =>
      r.found
        ? { attributes: JSON.parse(r.attributes_json) as Record<string, unknown>, version: Number(r.version) }
        : undefined,
    );
  }

  close(): void {
    this.client.close();
  }
}

interface AuthenticateResponse {
  outcome: 'AUTHENTICATED' | 'ANONYMOUS' | 'REJECTED' | 'OUTCOME_UNSPECIFIED';
  principal: string;
  claims_json: string;
  audiences: string[];
  presenter: string;
  error_code: string;
  error_message: string;
}

/**
 * Authenticates through the PIP (one round trip per call). Enforcement points that can hold the
 * RequestAuthentication resources themselves should use `@portcullis/identity`'s `PolicySet`
 * instead: it verifies locally with cached keys. A refusal is thrown as the identity package's
 * `AuthenticationError`, exactly as a local `PolicySet` would throw it.
 */
export class GrpcIdentitySource implements IdentitySource {
  private readonly client: grpc.Client;
  private readonly deadlineMs: number;

  constructor(options: PipClientOptions) {
    const Client = serviceClient(pipPackage(), 'portcullis.pip.v1.Identity');
    this.client = new Client(options.address, options.credentials ?? grpc.credentials.createInsecure());
    this.deadlineMs = options.deadlineMs ?? 2000;
  }

  async authenticate(request: AuthenticationRequest): Promise<IdentityOutcome> {
    const headers: Record<string, string> = {};
    const repeated: { name: string; value: string }[] = [];
    for (const [name, value] of Object.entries(request.headers)) {
      if (typeof value === 'string') headers[name.toLowerCase()] = value;
      else if (Array.isArray(value)) for (const v of value) repeated.push({ name, value: String(v) });
    }
    const query =
      request.query === undefined
        ? ''
        : typeof request.query === 'string'
          ? request.query.replace(/^\?/, '')
          : request.query instanceof URLSearchParams
            ? request.query.toString()
            : new URLSearchParams(
                Object.entries(request.query).flatMap(([k, v]) =>
                  v === undefined
                    ? []
                    : (typeof v === 'string' ? [v] : v).map((x) => [k, x] as [string, string]),
                ),
              ).toString();
    const response = await unary<unknown, AuthenticateResponse>(
      this.client,
      'Authenticate',
      {
        namespace: request.namespace,
        labels: request.labels ?? {},
        headers,
        repeated_headers: repeated,
        query,
        cookies: request.cookies ?? {},
      },
      { deadlineMs: this.deadlineMs },
    );
    if (response.outcome === 'ANONYMOUS') return { anonymous: true };
    if (response.outcome === 'AUTHENTICATED') {
      return {
        anonymous: false,
        principal: response.principal === '' ? undefined : response.principal,
        claims: JSON.parse(response.claims_json) as Record<string, unknown>,
        audiences: response.audiences,
        presenter: response.presenter === '' ? undefined : response.presenter,
      };
    }
    const code: AuthenticationErrorCode =
      response.error_code in AUTHENTICATION_ERROR_CODES
        ? (response.error_code as AuthenticationErrorCode)
        : 'malformed';
    throw new AuthenticationError(code, response.error_message || 'the token was refused');
  }

  close(): void {
    this.client.close();
  }
}
