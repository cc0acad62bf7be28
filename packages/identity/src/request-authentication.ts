// Istio RequestAuthentication resources (security.istio.io v1 and v1beta1): parsing, validation, normalized model.
import yaml from 'js-yaml';
import { InvalidResourceError, quote, type ResourceProblem } from './errors.ts';
import {
  DEFAULT_JWT_ALGORITHMS,
  isJwtAlgorithm,
  JWT_ALGORITHMS,
  type JwtAlgorithm,
} from './jwt-algorithms.ts';

export const REQUEST_AUTHENTICATION_API_VERSIONS = [
  'security.istio.io/v1',
  'security.istio.io/v1beta1',
] as const;
export type RequestAuthenticationApiVersion = (typeof REQUEST_AUTHENTICATION_API_VERSIONS)[number];

/** The field of a jwtRule that carries Portcullis's per-issuer algorithm allow-list (not part of Istio's schema). */
export const ALGORITHMS_FIELD = 'x-portcullis-algorithms';

/** Istio's default JWKS fetch timeout. */
export const DEFAULT_JWKS_TIMEOUT_MS = 5_000;

/** A header a token is read from; `name` is lower-cased, `prefix` is matched case-sensitively as Envoy does. */
export interface JwtHeaderLocation {
  readonly name: string;
  readonly prefix: string;
}

/** One `outputClaimToHeaders` entry; `header` is lower-cased. `claim` may be a dotted path into nested objects. */
export interface ClaimToHeader {
  readonly header: string;
  readonly claim: string;
}

/**
 * A validated jwtRule. Locations are kept as written: a rule with no `fromHeaders`, `fromParams` and
 * `fromCookies` uses Istio's defaults (`Authorization: Bearer`, then `access_token`), which the token
 * extraction applies. Immutable; the authenticator and JWKS cache key their per-rule state on the object.
 */
export interface JwtRule {
  readonly issuer: string;
  readonly audiences: readonly string[];
  readonly jwksUri: string | undefined;
  /** Inline JWKS document (JSON text), as Istio's `jwks`. */
  readonly jwks: string | undefined;
  readonly fromHeaders: readonly JwtHeaderLocation[];
  readonly fromParams: readonly string[];
  readonly fromCookies: readonly string[];
  readonly outputPayloadToHeader: string | undefined;
  readonly outputClaimToHeaders: readonly ClaimToHeader[];
  readonly forwardOriginalToken: boolean;
  /** JWKS (and OpenID discovery) fetch timeout. */
  readonly timeoutMs: number;
  readonly algorithms: readonly JwtAlgorithm[];
  /** Where the rule was declared, for messages: `namespace/name#index`. */
  readonly origin: string;
}

/** A validated RequestAuthentication; `selector` is `spec.selector.matchLabels` (undefined: every workload). */
export interface RequestAuthentication {
  readonly apiVersion: RequestAuthenticationApiVersion;
  readonly kind: 'RequestAuthentication';
  readonly metadata: { readonly name: string; readonly namespace: string };
  readonly selector: Readonly<Record<string, string>> | undefined;
  readonly jwtRules: readonly JwtRule[];
}

export interface ParseRequestAuthenticationOptions {
  /** Upper bound on text input, in bytes (default 256 KiB). */
  readonly maxBytes?: number;
  /** Namespace for a resource whose metadata has none (as `kubectl apply -n`); without it, one is required. */
  readonly defaultNamespace?: string;
}

export const DEFAULT_MAX_RESOURCE_BYTES = 256 * 1024;

// Bounds on list lengths: they keep validation linear even for YAML whose aliases repeat a large node many times.
const LIMITS = {
  jwtRules: 100,
  audiences: 100,
  fromHeaders: 32,
  fromParams: 32,
  fromCookies: 32,
  outputClaimToHeaders: 64,
  matchLabels: 64,
} as const;

const TOP_LEVEL_FIELDS = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status']);
const SPEC_FIELDS = new Set(['selector', 'jwtRules', 'targetRef', 'targetRefs']);
const RULE_FIELDS = new Set([
  'issuer',
  'audiences',
  'jwksUri',
  'jwks',
  'fromHeaders',
  'fromParams',
  'fromCookies',
  'outputPayloadToHeader',
  'outputClaimToHeaders',
  'forwardOriginalToken',
  'timeout',
  'failureMode',
  ALGORITHMS_FIELD,
]);

// RFC 9110 token characters: what a header (or cookie) name may contain.
const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/**
 * Parses and validates one RequestAuthentication given as YAML or JSON text (string or UTF-8 bytes)
 * or as an already-decoded object. Throws `InvalidResourceError` (code `invalid_resource`) listing
 * every problem with its field path. The result shares no objects with the input.
 */
export function parseRequestAuthentication(
  input: unknown,
  options: ParseRequestAuthenticationOptions = {},
): RequestAuthentication {
  const document =
    typeof input === 'string' || input instanceof Uint8Array ? decodeResourceDocument(input, options) : input;
  const problems = new Problems();
  const resource = validateResource(document, problems, options);
  if (problems.list.length > 0 || resource === undefined) throw new InvalidResourceError(problems.list);
  return resource;
}

/** YAML (or JSON) text to a value, bounded in size and strict UTF-8; errors name the line and column. */
export function decodeResourceDocument(
  input: string | Uint8Array,
  options: Pick<ParseRequestAuthenticationOptions, 'maxBytes'> = {},
): unknown {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_RESOURCE_BYTES;
  const size = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength;
  if (size > maxBytes) {
    throw new InvalidResourceError([
      { path: '', reason: `the document is ${size} bytes; the limit is ${maxBytes}` },
    ]);
  }
  let text: string;
  try {
    text = typeof input === 'string' ? input : new TextDecoder('utf-8', { fatal: true }).decode(input);
  } catch (cause) {
    throw new InvalidResourceError([{ path: '', reason: 'the document is not valid UTF-8' }], { cause });
  }
  try {
    // The core schema is YAML 1.2's JSON-compatible one: no timestamps, binary or merge keys to surprise anyone.
    return yaml.load(text, { schema: yaml.CORE_SCHEMA });
  } catch (cause) {
    const where =
      cause instanceof yaml.YAMLException && cause.mark
        ? ` at line ${cause.mark.line + 1}, column ${cause.mark.column + 1}`
        : '';
    const reason = cause instanceof yaml.YAMLException ? cause.reason : String(cause);
    throw new InvalidResourceError([{ path: '', reason: `not valid YAML or JSON${where}: ${reason}` }], {
      cause,
    });
  }
}

class Problems {
  readonly list: ResourceProblem[] = [];
  add(path: string, reason: string): void {
    this.list.push({ path, reason });
  }
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function unknownFields(object: Json, allowed: ReadonlySet<string>, path: string, problems: Problems): void {
  for (const key of Object.keys(object)) {
    if (!allowed.has(key)) problems.add(join(path, key), 'unknown field');
  }
}

function join(path: string, key: string): string {
  const segment = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : `[${JSON.stringify(key)}]`;
  if (path === '') return segment;
  return segment.startsWith('[') ? `${path}${segment}` : `${path}.${segment}`;
}

function validateResource(
  document: unknown,
  problems: Problems,
  options: ParseRequestAuthenticationOptions,
): RequestAuthentication | undefined {
  if (!isObject(document)) {
    problems.add('', 'a RequestAuthentication must be an object');
    return undefined;
  }
  unknownFields(document, TOP_LEVEL_FIELDS, '', problems);

  const apiVersion = document['apiVersion'];
  if (apiVersion === undefined) problems.add('apiVersion', 'required');
  else if (!REQUEST_AUTHENTICATION_API_VERSIONS.includes(apiVersion as RequestAuthenticationApiVersion)) {
    problems.add('apiVersion', `must be one of ${REQUEST_AUTHENTICATION_API_VERSIONS.join(', ')}`);
  }
  const kind = document['kind'];
  if (kind === undefined) problems.add('kind', 'required');
  else if (kind !== 'RequestAuthentication') problems.add('kind', 'must be RequestAuthentication');

  const metadata = validateMetadata(document['metadata'], problems, options);
  const origin = metadata ? `${metadata.namespace}/${metadata.name}` : '?';

  const spec = document['spec'] ?? {};
  if (!isObject(spec)) {
    problems.add('spec', 'must be an object');
    return undefined;
  }
  unknownFields(spec, SPEC_FIELDS, 'spec', problems);
  for (const field of ['targetRef', 'targetRefs']) {
    // Silently ignoring a gateway target would widen the policy to the whole namespace.
    if (spec[field] !== undefined) problems.add(`spec.${field}`, 'not supported: use spec.selector');
  }
  const selector = validateSelector(spec['selector'], problems);
  const jwtRules: JwtRule[] = [];
  const rules = spec['jwtRules'];
  if (rules !== undefined && rules !== null) {
    if (!Array.isArray(rules)) problems.add('spec.jwtRules', 'must be a list');
    else if (rules.length > LIMITS.jwtRules)
      problems.add('spec.jwtRules', `at most ${LIMITS.jwtRules} rules`);
    else {
      rules.forEach((rule, index) => {
        const parsed = validateRule(rule, `spec.jwtRules[${index}]`, `${origin}#${index}`, problems);
        if (parsed) jwtRules.push(parsed);
      });
    }
  }

  if (metadata === undefined || problems.list.length > 0) return undefined;
  return {
    apiVersion: apiVersion as RequestAuthenticationApiVersion,
    kind: 'RequestAuthentication',
    metadata,
    selector,
    jwtRules,
  };
}

function validateMetadata(
  value: unknown,
  problems: Problems,
  options: ParseRequestAuthenticationOptions,
): { name: string; namespace: string } | undefined {
  if (value === undefined) {
    problems.add('metadata', 'required');
    return undefined;
  }
  if (!isObject(value)) {
    problems.add('metadata', 'must be an object');
    return undefined;
  }
  const name = value['name'];
  let ok = true;
  if (name === undefined || name === '') {
    problems.add('metadata.name', 'required');
    ok = false;
  } else if (typeof name !== 'string' || name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    problems.add('metadata.name', 'must be a DNS subdomain name (lower-case letters, digits, "-" and ".")');
    ok = false;
  }
  const given = value['namespace'];
  const namespace = given === undefined || given === null || given === '' ? options.defaultNamespace : given;
  if (namespace === undefined || namespace === '') {
    problems.add('metadata.namespace', 'required');
    ok = false;
  } else if (typeof namespace !== 'string' || namespace.length > 63 || !DNS_LABEL.test(namespace)) {
    problems.add(
      'metadata.namespace',
      'must be a DNS label (lower-case letters, digits and "-", at most 63)',
    );
    ok = false;
  }
  return ok ? { name: name as string, namespace: namespace as string } : undefined;
}

function validateSelector(value: unknown, problems: Problems): Readonly<Record<string, string>> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) {
    problems.add('spec.selector', 'must be an object');
    return undefined;
  }
  unknownFields(value, new Set(['matchLabels']), 'spec.selector', problems);
  const labels = value['matchLabels'];
  if (labels === undefined || labels === null) return undefined;
  if (!isObject(labels)) {
    problems.add('spec.selector.matchLabels', 'must be a map of label names to values');
    return undefined;
  }
  const entries = Object.entries(labels);
  if (entries.length > LIMITS.matchLabels) {
    problems.add('spec.selector.matchLabels', `at most ${LIMITS.matchLabels} labels`);
    return undefined;
  }
  const out: [string, string][] = [];
  for (const [key, label] of entries) {
    const path = join('spec.selector.matchLabels', key);
    if (!validLabelKey(key)) problems.add(path, 'invalid label name');
    else if (typeof label !== 'string') problems.add(path, 'must be a string');
    else if (label !== '' && (label.length > 63 || !LABEL_NAME.test(label)))
      problems.add(path, 'invalid label value');
    else out.push([key, label]);
  }
  // An empty selector selects every workload, as in Istio.
  return out.length === 0 ? undefined : Object.freeze(Object.fromEntries(out));
}

function validLabelKey(key: string): boolean {
  const slash = key.indexOf('/');
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)))
    return false;
  return name.length > 0 && name.length <= 63 && LABEL_NAME.test(name);
}

function validateRule(value: unknown, path: string, origin: string, problems: Problems): JwtRule | undefined {
  if (!isObject(value)) {
    problems.add(path, 'must be an object');
    return undefined;
  }
  const before = problems.list.length;
  unknownFields(value, RULE_FIELDS, path, problems);

  const issuer = value['issuer'];
  if (issuer === undefined || issuer === null || issuer === '') problems.add(`${path}.issuer`, 'required');
  else if (typeof issuer !== 'string') problems.add(`${path}.issuer`, 'must be a string');

  const audiences = stringList(
    value['audiences'],
    `${path}.audiences`,
    LIMITS.audiences,
    problems,
    (item, at) => {
      if (item === '') problems.add(at, 'must be a non-empty string');
    },
  );

  const jwksUri = optionalString(value['jwksUri'], `${path}.jwksUri`, problems);
  if (jwksUri !== undefined && !isHttpUrl(jwksUri)) {
    problems.add(`${path}.jwksUri`, 'must be an absolute http or https URL');
  }
  const jwks = optionalString(value['jwks'], `${path}.jwks`, problems);
  if (jwks !== undefined) {
    if (jwksUri !== undefined) problems.add(`${path}.jwks`, 'only one of jwksUri and jwks may be set');
    const reason = inlineJwksProblem(jwks);
    if (reason) problems.add(`${path}.jwks`, reason);
  }
  if (
    jwksUri === undefined &&
    jwks === undefined &&
    typeof issuer === 'string' &&
    issuer !== '' &&
    !isHttpUrl(issuer)
  ) {
    problems.add(
      `${path}.jwksUri`,
      'required: the issuer is not an http(s) URL, so OpenID discovery cannot locate its keys',
    );
  }

  const fromHeaders = validateHeaderLocations(value['fromHeaders'], `${path}.fromHeaders`, problems);
  const fromParams = stringList(
    value['fromParams'],
    `${path}.fromParams`,
    LIMITS.fromParams,
    problems,
    (item, at) => {
      if (item === '') problems.add(at, 'must be a non-empty string');
    },
  );
  const fromCookies = stringList(
    value['fromCookies'],
    `${path}.fromCookies`,
    LIMITS.fromCookies,
    problems,
    (item, at) => {
      if (!HTTP_TOKEN.test(item)) problems.add(at, 'must be a cookie name');
    },
  );

  const payloadHeader = optionalString(
    value['outputPayloadToHeader'],
    `${path}.outputPayloadToHeader`,
    problems,
  );
  if (payloadHeader !== undefined && !HTTP_TOKEN.test(payloadHeader)) {
    problems.add(`${path}.outputPayloadToHeader`, 'must be an HTTP header name');
  }
  const claimHeaders = validateClaimHeaders(
    value['outputClaimToHeaders'],
    `${path}.outputClaimToHeaders`,
    problems,
  );

  const forward = value['forwardOriginalToken'];
  if (forward !== undefined && forward !== null && typeof forward !== 'boolean') {
    problems.add(`${path}.forwardOriginalToken`, 'must be a boolean');
  }

  let timeoutMs = DEFAULT_JWKS_TIMEOUT_MS;
  const timeout = value['timeout'];
  if (timeout !== undefined && timeout !== null) {
    const parsed = typeof timeout === 'string' ? parseDurationMs(timeout) : 'must be a duration such as "5s"';
    if (typeof parsed === 'string') problems.add(`${path}.timeout`, parsed);
    else timeoutMs = parsed;
  }

  const failureMode = value['failureMode'];
  if (failureMode !== undefined && failureMode !== null && failureMode !== 'PERMISSIVE') {
    problems.add(`${path}.failureMode`, 'not supported: only PERMISSIVE (the default) is');
  }

  let algorithms: readonly JwtAlgorithm[] = DEFAULT_JWT_ALGORITHMS;
  const rawAlgorithms = value[ALGORITHMS_FIELD];
  if (rawAlgorithms !== undefined && rawAlgorithms !== null) {
    const at = join(path, ALGORITHMS_FIELD);
    const count = problems.list.length;
    const listed = stringList(rawAlgorithms, at, JWT_ALGORITHMS.length * 2, problems, (item, itemPath) => {
      if (!isJwtAlgorithm(item)) {
        problems.add(
          itemPath,
          `unsupported algorithm ${quote(item)}: none and HS* are never accepted; use ${JWT_ALGORITHMS.join(', ')}`,
        );
      }
    });
    if (problems.list.length === count) {
      if (listed.length === 0) problems.add(at, 'must list at least one algorithm');
      algorithms = Object.freeze([...new Set(listed.filter(isJwtAlgorithm))]);
    }
  }

  if (problems.list.length > before) return undefined;
  return Object.freeze({
    issuer: issuer as string,
    audiences,
    jwksUri,
    jwks,
    fromHeaders,
    fromParams,
    fromCookies,
    outputPayloadToHeader: payloadHeader?.toLowerCase(),
    outputClaimToHeaders: claimHeaders,
    forwardOriginalToken: forward === true,
    timeoutMs,
    algorithms,
    origin,
  });
}

/** Protobuf JSON leaves an empty string and an absent field indistinguishable; both mean unset. */
function optionalString(value: unknown, path: string, problems: Problems): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') {
    problems.add(path, 'must be a string');
    return undefined;
  }
  return value;
}

function stringList(
  value: unknown,
  path: string,
  limit: number,
  problems: Problems,
  check: (item: string, path: string) => void,
): readonly string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    problems.add(path, 'must be a list of strings');
    return [];
  }
  if (value.length > limit) {
    problems.add(path, `at most ${limit} entries`);
    return [];
  }
  const out: string[] = [];
  value.forEach((item, index) => {
    const at = `${path}[${index}]`;
    if (typeof item !== 'string') problems.add(at, 'must be a string');
    else {
      check(item, at);
      out.push(item);
    }
  });
  return Object.freeze(out);
}

function validateHeaderLocations(
  value: unknown,
  path: string,
  problems: Problems,
): readonly JwtHeaderLocation[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    problems.add(path, 'must be a list of {name, prefix}');
    return [];
  }
  if (value.length > LIMITS.fromHeaders) {
    problems.add(path, `at most ${LIMITS.fromHeaders} entries`);
    return [];
  }
  const out: JwtHeaderLocation[] = [];
  value.forEach((item, index) => {
    const at = `${path}[${index}]`;
    if (!isObject(item)) {
      problems.add(at, 'must be an object with name and prefix');
      return;
    }
    unknownFields(item, new Set(['name', 'prefix']), at, problems);
    const name = item['name'];
    const prefix = item['prefix'] ?? '';
    if (name === undefined || name === null || name === '') problems.add(`${at}.name`, 'required');
    else if (typeof name !== 'string' || !HTTP_TOKEN.test(name))
      problems.add(`${at}.name`, 'must be an HTTP header name');
    if (typeof prefix !== 'string') problems.add(`${at}.prefix`, 'must be a string');
    if (typeof name === 'string' && HTTP_TOKEN.test(name) && typeof prefix === 'string') {
      out.push(Object.freeze({ name: name.toLowerCase(), prefix }));
    }
  });
  return Object.freeze(out);
}

function validateClaimHeaders(value: unknown, path: string, problems: Problems): readonly ClaimToHeader[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    problems.add(path, 'must be a list of {header, claim}');
    return [];
  }
  if (value.length > LIMITS.outputClaimToHeaders) {
    problems.add(path, `at most ${LIMITS.outputClaimToHeaders} entries`);
    return [];
  }
  const out: ClaimToHeader[] = [];
  const seen = new Set<string>();
  value.forEach((item, index) => {
    const at = `${path}[${index}]`;
    if (!isObject(item)) {
      problems.add(at, 'must be an object with header and claim');
      return;
    }
    unknownFields(item, new Set(['header', 'claim']), at, problems);
    const header = item['header'];
    const claim = item['claim'];
    let ok = true;
    if (header === undefined || header === null || header === '') {
      problems.add(`${at}.header`, 'required');
      ok = false;
    } else if (typeof header !== 'string' || !HTTP_TOKEN.test(header)) {
      problems.add(`${at}.header`, 'must be an HTTP header name');
      ok = false;
    } else if (seen.has(header.toLowerCase())) {
      problems.add(`${at}.header`, `duplicate header ${quote(header)}: each header may be written once`);
      ok = false;
    }
    if (claim === undefined || claim === null || claim === '') {
      problems.add(`${at}.claim`, 'required');
      ok = false;
    } else if (typeof claim !== 'string') {
      problems.add(`${at}.claim`, 'must be a string');
      ok = false;
    }
    if (ok) {
      const name = (header as string).toLowerCase();
      seen.add(name);
      out.push(Object.freeze({ header: name, claim: claim as string }));
    }
  });
  return Object.freeze(out);
}

function isHttpUrl(text: string): boolean {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return false;
  }
  return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
}

/** Checks the shape Istio's validation checks (a parseable JWKS); keys themselves are vetted when imported. */
function inlineJwksProblem(text: string): string | undefined {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    return 'must be a JSON Web Key Set document (JSON)';
  }
  if (!isObject(document) || !Array.isArray(document['keys']))
    return 'must be a JSON object with a "keys" list';
  if (document['keys'].length === 0) return 'must contain at least one key';
  const bad = document['keys'].findIndex((key) => !isObject(key) || typeof key['kty'] !== 'string');
  return bad === -1 ? undefined : `key ${bad} must be an object with a "kty" member`;
}

const DURATION_PART = /(\d+)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)|\.(\d+)(ns|us|µs|μs|ms|s|m|h)/y;
const UNIT_NS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n,
  μs: 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};
const MAX_TIMEOUT_MS = 3_600_000;

/**
 * Parses a duration as Istio accepts it (Go syntax: "5s", "1.5s", "250ms", "1m30s"); returns the
 * milliseconds or the reason it is invalid. Like Istio: at least 1ms, millisecond precision.
 */
export function parseDurationMs(text: string): number | string {
  const invalid = 'must be a duration such as "5s", "1.5s" or "250ms"';
  if (text.length === 0 || text.length > 64) return invalid;
  let total = 0n;
  DURATION_PART.lastIndex = 0;
  while (DURATION_PART.lastIndex < text.length) {
    const match = DURATION_PART.exec(text);
    if (!match) return invalid;
    const whole = match[1] ?? '0';
    const fraction = match[2] ?? match[4] ?? '';
    const unit = UNIT_NS[match[3] ?? match[5] ?? ''];
    if (unit === undefined) return invalid;
    const scale = 10n ** BigInt(fraction.length);
    const fractionNs = BigInt(fraction === '' ? '0' : fraction) * unit;
    if (fractionNs % scale !== 0n) return 'only millisecond precision is supported';
    total += BigInt(whole) * unit + fractionNs / scale;
  }
  if (total % 1_000_000n !== 0n) return 'only millisecond precision is supported';
  const ms = total / 1_000_000n;
  if (ms < 1n) return 'must be at least 1ms';
  if (ms > BigInt(MAX_TIMEOUT_MS)) return 'must be at most 1h';
  return Number(ms);
}
