// The RequestAuthentication resources in force, by namespace and name, and request authentication against them.
import type { AuthenticationOutcome, JwtAuthenticator } from './jwt-authenticator.ts';
import type { RequestAuthentication } from './request-authentication.ts';
import { RuleScope, type TokenRequest } from './token-extraction.ts';

export const DEFAULT_ROOT_NAMESPACE = 'istio-system';

export interface PolicySetOptions {
  readonly authenticator: JwtAuthenticator;
  /** Istio's root namespace: its resources apply in every namespace (default `istio-system`). */
  readonly rootNamespace?: string;
}

export interface AuthenticationRequest extends TokenRequest {
  /** The namespace of the workload receiving the request. */
  readonly namespace: string;
  /**
   * The workload's labels, matched against `spec.selector.matchLabels`. Omitted means a workload
   * without labels: only resources without a selector apply.
   */
  readonly labels?: Readonly<Record<string, string>>;
}

// Compiled scopes are cached per namespace (and per label set where selectors make labels matter);
// the bound keeps callers that send ever-new namespaces or label sets from growing the cache without limit.
const MAX_CACHED = 1024;

interface NamespaceView {
  /** The candidate resources: the namespace's, then the root namespace's, each ordered by name. */
  readonly candidates: readonly RequestAuthentication[];
  /** Set when no candidate has a selector: then every workload of the namespace shares it. */
  readonly shared: RuleScope | undefined;
  readonly byLabels: Map<string, RuleScope>;
}

/**
 * An in-memory set of RequestAuthentication resources. Contract: `put` and `delete` take effect for
 * `authenticate` calls that start afterwards; a call in flight finishes with the rules it started
 * with. After a change, the authenticator's JWKS cache forgets issuers no rule uses any more, so
 * give each policy set its own authenticator (and cache). Not persisted: the owner (PIP, proxy)
 * reloads it from the PAP or bus.
 */
export class PolicySet {
  readonly rootNamespace: string;
  private readonly authenticator: JwtAuthenticator;
  private readonly byNamespace = new Map<string, Map<string, RequestAuthentication>>();
  private readonly views = new Map<string, NamespaceView>();

  constructor(options: PolicySetOptions) {
    this.authenticator = options.authenticator;
    this.rootNamespace = options.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  }

  /** Adds or replaces the resource with the same namespace and name. */
  put(resource: RequestAuthentication): void {
    const { namespace, name } = resource.metadata;
    let resources = this.byNamespace.get(namespace);
    if (resources === undefined) {
      resources = new Map();
      this.byNamespace.set(namespace, resources);
    }
    resources.set(name, resource);
    this.changed();
  }

  get(namespace: string, name: string): RequestAuthentication | undefined {
    return this.byNamespace.get(namespace)?.get(name);
  }

  /** Removes a resource; false when there was none. */
  delete(namespace: string, name: string): boolean {
    const resources = this.byNamespace.get(namespace);
    if (resources === undefined || !resources.delete(name)) return false;
    if (resources.size === 0) this.byNamespace.delete(namespace);
    this.changed();
    return true;
  }

  private changed(): void {
    this.views.clear();
    this.authenticator.retainKeys(this.list().flatMap((r) => r.jwtRules));
  }

  /** The resources of one namespace, or of all, ordered by namespace then name. */
  list(namespace?: string): RequestAuthentication[] {
    const namespaces = namespace === undefined ? [...this.byNamespace.keys()].sort() : [namespace];
    return namespaces.flatMap((ns) => sortedByName(this.byNamespace.get(ns)));
  }

  /**
   * The rules that apply to a workload: its namespace's resources, then the root namespace's (each
   * ordered by name), kept when their selector matches the labels; a resource without one matches all.
   */
  scopeFor(namespace: string, labels?: Readonly<Record<string, string>>): RuleScope {
    let view = this.views.get(namespace);
    if (view === undefined) {
      const namespaces = namespace === this.rootNamespace ? [namespace] : [namespace, this.rootNamespace];
      const candidates = namespaces.flatMap((ns) => sortedByName(this.byNamespace.get(ns)));
      const selective = candidates.some((r) => r.selector !== undefined);
      view = {
        candidates,
        shared: selective ? undefined : new RuleScope(candidates.flatMap((r) => r.jwtRules)),
        byLabels: new Map(),
      };
      if (this.views.size >= MAX_CACHED) this.views.clear();
      this.views.set(namespace, view);
    }
    if (view.shared !== undefined) return view.shared;
    const key = labelKey(labels);
    let scope = view.byLabels.get(key);
    if (scope === undefined) {
      const applicable = view.candidates.filter((r) => selects(r.selector, labels));
      scope = new RuleScope(applicable.flatMap((r) => r.jwtRules));
      if (view.byLabels.size >= MAX_CACHED) view.byLabels.clear();
      view.byLabels.set(key, scope);
    }
    return scope;
  }

  /**
   * Authenticates a request with the rules in scope for its workload: `{anonymous: true}` without a
   * token, the verified identity with one, and an `AuthenticationError` for a bad one.
   */
  authenticate(request: AuthenticationRequest): Promise<AuthenticationOutcome> {
    return this.authenticator.authenticate(request, this.scopeFor(request.namespace, request.labels));
  }

  /** Fetches the keys of every rule ahead of traffic; failures are recorded by the JWKS cache, not thrown. */
  prefetchKeys(): Promise<void> {
    return this.authenticator.prefetchKeys(this.list().flatMap((r) => r.jwtRules));
  }
}

function sortedByName(
  resources: ReadonlyMap<string, RequestAuthentication> | undefined,
): RequestAuthentication[] {
  if (resources === undefined) return [];
  return [...resources.values()].sort((a, b) =>
    a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0,
  );
}

function selects(
  selector: Readonly<Record<string, string>> | undefined,
  labels: Readonly<Record<string, string>> | undefined,
): boolean {
  if (selector === undefined) return true;
  if (labels === undefined) return false;
  for (const [key, value] of Object.entries(selector)) {
    if (!Object.hasOwn(labels, key) || labels[key] !== value) return false;
  }
  return true;
}

function labelKey(labels: Readonly<Record<string, string>> | undefined): string {
  if (labels === undefined) return '';
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
