// How the PDP enriches a JSON decision input from the PIP: where the token, path and headers are read in it.
import type { EnrichmentRequest } from '@portcullis/attributes';

/** What `pdpEnrich` needs of `@portcullis/attributes`' Enricher (which fits it). */
export interface PdpInputEnricher {
  enrich<T extends object>(input: T, options?: { request?: EnrichmentRequest }): Promise<object>;
}

type Headers = EnrichmentRequest['headers'];

/**
 * The request a PDP input describes, for the Enricher's selectors. Two shapes:
 * - Envoy's (`input.attributes.request.http`, as ext_authz and OPA-Envoy build it): its headers
 *   (the token in `authorization: Bearer …`, `header=` selectors) and its `path` (`path=`
 *   templates; `input.parsed_path` when present).
 * - Any other object: `input.token` is the bearer token, `input.path` the path, no headers.
 * In the Envoy shape, an `input.token` (when no `authorization` header is sent) and an
 * `input.path` (when the Envoy path is absent) are used too.
 * Undefined means "read it as Envoy's", which lets the Enricher reuse `parsed_path`.
 */
export function pdpRequest(input: object): EnrichmentRequest | undefined {
  const fields = input as { token?: unknown; path?: unknown; attributes?: unknown };
  const http = (
    fields.attributes as { request?: { http?: { headers?: unknown; path?: unknown } } } | undefined
  )?.request?.http;
  const envoyHeaders =
    typeof http?.headers === 'object' && http.headers !== null ? (http.headers as Headers) : undefined;
  const token = typeof fields.token === 'string' && fields.token !== '' ? fields.token : undefined;
  const envoyPath = typeof http?.path === 'string' ? http.path : undefined;
  if (envoyPath !== undefined && (token === undefined || envoyHeaders?.['authorization'] !== undefined)) {
    return undefined;
  }
  const headers: Record<string, Headers[string]> = { ...envoyHeaders };
  if (token !== undefined && headers['authorization'] === undefined)
    headers['authorization'] = `Bearer ${token}`;
  return {
    headers,
    path: envoyPath ?? (typeof fields.path === 'string' ? fields.path : '/'),
  };
}

/**
 * The Decider's enrichment hook. The Enricher must be configured with `onInvalidToken: 'annotate'`:
 * a PDP answers decisions, not requests, so it cannot refuse one with a 401 as an enforcement point
 * does; a refused token becomes `input.identity.error` `{code, message}` and the policy decides.
 */
export function pdpEnrich(enricher: PdpInputEnricher): (input: object) => Promise<object> {
  return (input) => {
    const request = pdpRequest(input);
    return enricher.enrich(input, request === undefined ? {} : { request });
  };
}
