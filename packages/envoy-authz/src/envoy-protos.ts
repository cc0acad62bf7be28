// Envoy's ext_authz v3 protos, loaded from the copies @grpc/grpc-js-xds ships: the grpc-js service definition, protobufjs reflection for the input builder, and TS shapes of the decoded messages.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_LOADER_OPTIONS } from '@portcullis/runtime';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);
const xdsDeps = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');

/** Include dirs for Envoy's API protos and what they import (xds, googleapis, validate). */
export const ENVOY_PROTO_INCLUDE_DIRS: readonly string[] = [
  'envoy-api',
  'xds',
  'googleapis',
  'protoc-gen-validate',
].map((d) => path.join(xdsDeps, d));

export const EXTERNAL_AUTH_PROTO = 'envoy/service/auth/v3/external_auth.proto';
export const AUTHORIZATION_SERVICE = 'envoy.service.auth.v3.Authorization';

/** Loads Envoy API protos (and their imports) from the copies @grpc/grpc-js-xds ships, resolved. */
export function loadEnvoyProtos(files: string[]): protobuf.Root {
  const root = new protobuf.Root();
  const fallback = root.resolvePath.bind(root);
  root.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of ENVOY_PROTO_INCLUDE_DIRS) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    return fallback(origin, target);
  };
  root.loadSync(files, { keepCase: true });
  root.resolveAll();
  return root;
}

/**
 * One protobufjs Root serves both the grpc-js definition (through proto-loader's fromJSON, so
 * the files are parsed once) and the reflection check-request-input walks. google/protobuf/*
 * come from protobufjs's bundled copies, as with proto-loader's own loadSync; those bundled
 * types name their fields in lowerCamel (Struct values are `stringValue`, not `string_value`)
 * even under keepCase.
 */
export const envoyProtoRoot: protobuf.Root = loadEnvoyProtos([EXTERNAL_AUTH_PROTO]);

/** proto-loader's definition of external_auth.proto, with the repository's loader options. */
export const envoyAuthPackageDefinition: protoLoader.PackageDefinition = protoLoader.fromJSON(
  envoyProtoRoot.toJSON(),
  PROTO_LOADER_OPTIONS,
);

function lookupClient(): grpc.ServiceClientConstructor {
  let node: unknown = grpc.loadPackageDefinition(envoyAuthPackageDefinition);
  for (const part of AUTHORIZATION_SERVICE.split('.')) node = (node as Record<string, unknown>)[part];
  if (typeof node !== 'function')
    throw new Error(`${AUTHORIZATION_SERVICE} missing from ${EXTERNAL_AUTH_PROTO}`);
  return node as grpc.ServiceClientConstructor;
}

/** A grpc-js client class for `envoy.service.auth.v3.Authorization` (what Envoy is, to us). */
export const AuthorizationClient: grpc.ServiceClientConstructor = lookupClient();

/** The grpc-js service definition to register a `Check` implementation under. */
export const authorizationServiceDefinition: grpc.ServiceDefinition = AuthorizationClient.service;

export const checkRequestType: protobuf.Type = envoyProtoRoot.lookupType(
  'envoy.service.auth.v3.CheckRequest',
);

/** `envoy.type.v3.StatusCode`: the HTTP statuses a DeniedHttpResponse can carry, number → enum name. */
export const ENVOY_HTTP_STATUS_CODES: ReadonlyMap<number, string> = new Map(
  Object.entries(envoyProtoRoot.lookupEnum('envoy.type.v3.StatusCode').values).map(([name, n]) => [n, name]),
);

/** `google.rpc.Code` values used in CheckResponse.status. */
export const RPC_CODE_OK = 0;
export const RPC_CODE_PERMISSION_DENIED = 7;

// Shapes of the messages as proto-loader decodes and encodes them with PROTO_LOADER_OPTIONS
// (keepCase, longs and enums as strings, bytes as Buffer, defaults, virtual oneof fields).
// Every field is optional: a peer other than Envoy may leave anything out, and the HTTP service
// mode builds a CheckRequest with only what an HTTP authorization request carries.

export interface HeaderValue {
  key: string;
  value?: string;
  raw_value?: Uint8Array;
}

export type HeaderAppendAction =
  | 'APPEND_IF_EXISTS_OR_ADD'
  | 'ADD_IF_ABSENT'
  | 'OVERWRITE_IF_EXISTS_OR_ADD'
  | 'OVERWRITE_IF_EXISTS';

export interface HeaderValueOption {
  header: HeaderValue | null;
  append?: { value: boolean } | null;
  append_action?: HeaderAppendAction;
  keep_empty_value?: boolean;
}

export interface QueryParameter {
  key: string;
  value: string;
}

/** google.protobuf.Value, with protobufjs's bundled (lowerCamel) field names. */
export interface StructValue {
  nullValue?: 'NULL_VALUE' | number;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: Struct | null;
  listValue?: { values: StructValue[] } | null;
  kind?: 'nullValue' | 'numberValue' | 'stringValue' | 'boolValue' | 'structValue' | 'listValue';
}

export interface Struct {
  fields: Record<string, StructValue>;
}

export interface Timestamp {
  seconds: string | number;
  nanos: number;
}

export interface SocketAddress {
  protocol?: string;
  address?: string;
  port_value?: number;
  named_port?: string;
  resolver_name?: string;
  ipv4_compat?: boolean;
  port_specifier?: 'port_value' | 'named_port';
}

export interface Address {
  socket_address?: SocketAddress | null;
  pipe?: { path: string; mode?: number } | null;
  envoy_internal_address?: { server_listener_name?: string; endpoint_id?: string } | null;
  address?: 'socket_address' | 'pipe' | 'envoy_internal_address';
}

export interface Peer {
  address?: Address | null;
  service?: string;
  labels?: Record<string, string>;
  principal?: string;
  certificate?: string;
}

export interface Metadata {
  filter_metadata?: Record<string, Struct>;
  typed_filter_metadata?: Record<string, { type_url: string; value: Uint8Array }>;
}

export interface HttpRequest {
  id?: string;
  method?: string;
  headers?: Record<string, string>;
  header_map?: { headers: HeaderValue[] } | null;
  path?: string;
  host?: string;
  scheme?: string;
  query?: string;
  fragment?: string;
  /** int64, a decimal string under `longs: String`. */
  size?: string | number;
  protocol?: string;
  body?: string;
  raw_body?: Uint8Array;
}

export interface AttributeContext {
  source?: Peer | null;
  destination?: Peer | null;
  request?: { time?: Timestamp | null; http?: HttpRequest | null } | null;
  context_extensions?: Record<string, string>;
  metadata_context?: Metadata | null;
  route_metadata_context?: Metadata | null;
  tls_session?: { sni: string } | null;
}

export interface CheckRequest {
  attributes?: AttributeContext | null;
}

/** google.rpc.Status: `code` is a google.rpc.Code number. */
export interface RpcStatus {
  code: number;
  message?: string;
}

export interface DeniedHttpResponse {
  /** envoy.type.v3.HttpStatus; `code` is the StatusCode enum name (`Forbidden`) as decoded. */
  status: { code: string | number } | null;
  headers: HeaderValueOption[];
  body: string;
}

export interface OkHttpResponse {
  headers: HeaderValueOption[];
  headers_to_remove: string[];
  response_headers_to_add: HeaderValueOption[];
  query_parameters_to_set: QueryParameter[];
  query_parameters_to_remove: string[];
  dynamic_metadata?: Struct | null;
}

export interface CheckResponse {
  status: RpcStatus | null;
  denied_response?: DeniedHttpResponse | null;
  ok_response?: OkHttpResponse | null;
  http_response?: 'denied_response' | 'ok_response';
  dynamic_metadata: Struct | null;
}
