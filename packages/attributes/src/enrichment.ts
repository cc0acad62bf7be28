// Decision-input enrichment: adds input.identity (the JWT step) and input.subject / input.resource (stored attributes).
import { AuthenticationError, type AuthenticationRequest, type HeaderInput } from '@portcullis/identity';
import type { AttributeCache, AttributeKey, AttributeValue } from './attribute-cache.ts';

/** What the JWT step found: Istio's request.auth.* (a local `PolicySet`'s outcome has this shape too). */
export type IdentityOutcome =
  | { readonly anonymous: true }
  | {
      readonly anonymous: false;
      readonly principal: string | undefined;
      readonly claims: Readonly<Record<string, unknown>>;
      readonly audiences: readonly string[];
      readonly presenter: string | undefined;
    };

/**
 * Authenticates a request: `@portcullis/identity`'s `PolicySet` (local, no round trip once keys are
 * cached) or `GrpcIdentitySource` (the PIP). Throws `AuthenticationError` for a refused token.
 */
export interface IdentitySource {
  authenticate(request: AuthenticationRequest): Promise<IdentityOutcome>;
}

/**
 * Where a subject or resource id comes from; the first selector that yields a non-empty string wins.
 * - `claim`: a verified claim, dotted for nested ones (`sub`, `org.id`); strings and integers.
 * - `principal`: `request.auth.principal` (`<iss>/<sub>`).
 * - `path`: a path template whose `{name}` segments capture; `param` names the capture. A
 *   template matches the whole path (query excluded), segment by segment; a last segment `**`
 *   matches any rest. Example: `{path: '/v1/documents/{doc}/**', param: 'doc'}`.
 * - `header`: a request header (lower-case name).
 */
export type IdSelector =
  | { readonly claim: string }
  | { readonly principal: true }
  | { readonly path: string; readonly param: string }
  | { readonly header: string };

export interface AttributeLookup {
  /** The attribute kind (`user`, `document`, …) as stored in the PIP. */
  readonly kind: string;
  readonly id: IdSelector | readonly IdSelector[];
}

export interface EnrichmentConfig {
  /** Namespace of the workload being protected: RequestAuthentications of it and the root namespace apply. */
  readonly namespace: string;
  /** The workload's labels, for resources with a selector. */
  readonly labels?: Readonly<Record<string, string>>;
  readonly subject?: AttributeLookup;
  readonly resource?: AttributeLookup;
  /**
   * A refused token: `reject` (default) throws the `AuthenticationError`, for the enforcement point
   * to answer 401 as Istio does; `annotate` sets `input.identity = {error: {code, message}}` and
   * leaves the decision to the policy.
   */
  readonly onInvalidToken?: 'reject' | 'annotate';
}

/** The request the input describes; by default read from an Envoy-style input (see `enrich`). */
export interface EnrichmentRequest {
  readonly headers: HeaderInput;
  /** The request path, query included or not. */
  readonly path: string;
}

/** What `enrich` adds under `input.subject` and `input.resource`. */
export interface AttributesView {
  readonly kind: string;
  readonly id: string;
  /** False when no record exists for the id (then `attributes` is empty). */
  readonly found: boolean;
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly version: number;
}

export type IdentityView =
  | { readonly anonymous: true }
  | { readonly error: { readonly code: string; readonly message: string } }
  | {
      readonly principal: string | null;
      readonly claims: Readonly<Record<string, unknown>>;
      readonly audiences: readonly string[];
      readonly presenter: string | null;
    };

export interface EnricherOptions {
  readonly config: EnrichmentConfig;
  readonly attributes?: AttributeCache;
  /**
   * Authenticates each request for `input.identity` and for claim or principal selectors; without
   * it, those come only from an outcome passed to `enrich` (else claim selectors resolve nothing).
   */
  readonly identity?: IdentitySource;
}

const EMPTY: Readonly<Record<string, unknown>> = Object.freeze({});

/**
 * Adds `identity`, `subject` and `resource` to decision inputs. Contract:
 * - `enrich` returns a new object (the input's own fields, then the three added ones); it never
 *   mutates the input. A field whose id cannot be resolved (no such claim, path not matching) is
 *   left out; a resolved id without a stored record gets `found: false`.
 * - With a local `PolicySet` as the identity source and every record in the cache, no network
 *   round trip happens. Misses go to the PIP in one `BatchGet` for subject and resource together.
 * - Errors: a refused token throws `AuthenticationError` (unless `onInvalidToken: 'annotate'`); an
 *   attribute source failure rejects with its error (the caller applies its fail-closed stance).
 * Safe for concurrent use; holds no per-request state.
 */
export class Enricher {
  private readonly config: EnrichmentConfig;
  private readonly cache: AttributeCache | undefined;
  private readonly identity: IdentitySource | undefined;
  private readonly subject: CompiledLookup | undefined;
  private readonly resource: CompiledLookup | undefined;

  constructor(options: EnricherOptions) {
    this.config = options.config;
    this.cache = options.attributes;
    this.identity = options.identity;
    this.subject =
      options.config.subject === undefined ? undefined : compileLookup(options.config.subject, 'subject');
    this.resource =
      options.config.resource === undefined ? undefined : compileLookup(options.config.resource, 'resource');
    if ((this.subject !== undefined || this.resource !== undefined) && this.cache === undefined) {
      throw new TypeError('Enricher: subject or resource lookups need an attribute cache');
    }
  }

  /**
   * Enriches a decision input. `request` defaults to the Envoy ext_authz input shape
   * (`input.attributes.request.http.headers` and `.path`); `identity` skips authentication when
   * the caller already has the JWT step's outcome.
   */
  async enrich<T extends object>(
    input: T,
    options: { request?: EnrichmentRequest; identity?: IdentityOutcome } = {},
  ): Promise<T & { identity?: IdentityView; subject?: AttributesView; resource?: AttributesView }> {
    const request = options.request ?? envoyRequest(input);
    let outcome = options.identity;
    let identityView: IdentityView | undefined;
    if (outcome === undefined && this.identity !== undefined) {
      const q = request.path.indexOf('?');
      try {
        outcome = await this.identity.authenticate({
          namespace: this.config.namespace,
          headers: request.headers,
          query: q === -1 ? '' : request.path.slice(q + 1),
          ...(this.config.labels === undefined ? {} : { labels: this.config.labels }),
        });
      } catch (error) {
        if (!(error instanceof AuthenticationError) || this.config.onInvalidToken !== 'annotate') throw error;
        identityView = { error: { code: error.code, message: error.message } };
      }
    }
    if (outcome !== undefined) identityView = viewOf(outcome);
    // The Envoy input already carries the decoded segments (`parsed_path`): no need to split the path again.
    const context: LookupContext = {
      request,
      outcome,
      segments: options.request === undefined ? parsedPath(input) : undefined,
    };
    const subjectId = this.subject?.resolve(context);
    const resourceId = this.resource?.resolve(context);
    const out: Record<string, unknown> = { ...(input as Record<string, unknown>) };
    if (identityView !== undefined) out['identity'] = identityView;
    if (subjectId !== undefined || resourceId !== undefined) {
      const cache = this.cache!;
      const keys: AttributeKey[] = [];
      if (subjectId !== undefined) keys.push({ kind: this.subject!.kind, id: subjectId });
      if (resourceId !== undefined) keys.push({ kind: this.resource!.kind, id: resourceId });
      // Hits are read synchronously: no promise per key, no microtask hop.
      const values = keys.map((k) => cache.peek(k.kind, k.id));
      if (values.some((v) => v === undefined)) {
        const fetched = await cache.getMany(keys);
        fetched.forEach((v, i) => {
          values[i] = v ?? null;
        });
      }
      let i = 0;
      if (subjectId !== undefined) out['subject'] = attributesView(keys[i]!, values[i++] ?? null);
      if (resourceId !== undefined) out['resource'] = attributesView(keys[i]!, values[i] ?? null);
    }
    return out as T & { identity?: IdentityView; subject?: AttributesView; resource?: AttributesView };
  }
}

interface LookupContext {
  readonly request: EnrichmentRequest;
  readonly outcome: IdentityOutcome | undefined;
  segments: string[] | undefined;
}

interface CompiledLookup {
  readonly kind: string;
  resolve(context: LookupContext): string | undefined;
}

function compileLookup(lookup: AttributeLookup, what: string): CompiledLookup {
  const selectors = (Array.isArray(lookup.id) ? lookup.id : [lookup.id]) as readonly IdSelector[];
  if (selectors.length === 0) throw new TypeError(`Enricher: ${what}.id names no selector`);
  const resolvers = selectors.map((s, i) => compileSelector(s, `${what}.id[${i}]`));
  return {
    kind: lookup.kind,
    resolve(context) {
      for (const resolve of resolvers) {
        const id = resolve(context);
        if (id !== undefined && id !== '') return id;
      }
      return undefined;
    },
  };
}

function compileSelector(
  selector: IdSelector,
  where: string,
): (context: LookupContext) => string | undefined {
  if ('claim' in selector) {
    const path = selector.claim.split('.');
    return ({ outcome }) => {
      if (outcome === undefined || outcome.anonymous) return undefined;
      let value: unknown = outcome.claims;
      for (const name of path) {
        if (typeof value !== 'object' || value === null || !Object.hasOwn(value, name)) return undefined;
        value = (value as Record<string, unknown>)[name];
      }
      if (typeof value === 'string') return value;
      if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
      return undefined;
    };
  }
  if ('principal' in selector) {
    return ({ outcome }) => (outcome === undefined || outcome.anonymous ? undefined : outcome.principal);
  }
  if ('header' in selector) {
    const name = selector.header.toLowerCase();
    return ({ request }) => {
      const value = request.headers[name];
      return typeof value === 'string' ? value : undefined;
    };
  }
  const template = selector.path.split('/').filter((s) => s !== '');
  const rest = template[template.length - 1] === '**';
  const fixed = rest ? template.slice(0, -1) : template;
  const index = fixed.indexOf(`{${selector.param}}`);
  if (index === -1)
    throw new TypeError(`Enricher: ${where}: path ${selector.path} has no {${selector.param}} segment`);
  // undefined: a capture or `*`, which match any one segment.
  const literals = fixed.map((t) => ((t.startsWith('{') && t.endsWith('}')) || t === '*' ? undefined : t));
  return (context) => {
    context.segments ??= pathSegments(context.request.path);
    const segments = context.segments;
    if (rest ? segments.length < fixed.length : segments.length !== fixed.length) return undefined;
    for (let i = 0; i < literals.length; i++) {
      const literal = literals[i];
      if (literal !== undefined && literal !== segments[i]) return undefined;
    }
    return segments[index];
  };
}

/** `input.parsed_path` when it is a list of strings without empty segments, as the OPA Envoy plugin builds it. */
function parsedPath(input: object): string[] | undefined {
  const parsed = (input as { parsed_path?: unknown }).parsed_path;
  if (!Array.isArray(parsed)) return undefined;
  for (const segment of parsed) if (typeof segment !== 'string' || segment === '') return undefined;
  return parsed as string[];
}

function pathSegments(path: string): string[] {
  const q = path.search(/[?#]/);
  const bare = q === -1 ? path : path.slice(0, q);
  return bare
    .split('/')
    .filter((s) => s !== '')
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
}

/** Headers and path of an Envoy ext_authz input (`attributes.request.http`), as the OPA Envoy plugin builds it. */
function envoyRequest(input: object): EnrichmentRequest {
  const http = (input as { attributes?: { request?: { http?: { headers?: unknown; path?: unknown } } } })
    .attributes?.request?.http;
  const headers = http?.headers;
  return {
    headers: typeof headers === 'object' && headers !== null ? (headers as HeaderInput) : {},
    path: typeof http?.path === 'string' ? http.path : '/',
  };
}

function viewOf(outcome: IdentityOutcome): IdentityView {
  if (outcome.anonymous) return { anonymous: true };
  return {
    principal: outcome.principal ?? null,
    claims: outcome.claims,
    audiences: outcome.audiences,
    presenter: outcome.presenter ?? null,
  };
}

function attributesView(key: AttributeKey, value: AttributeValue | null): AttributesView {
  return value === null
    ? { kind: key.kind, id: key.id, found: false, attributes: EMPTY, version: 0 }
    : { kind: key.kind, id: key.id, found: true, attributes: value.attributes, version: value.version };
}
