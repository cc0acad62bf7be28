// Entrypoint names: the one slash-separated form OPA's manifest and `opa build -e` use, from any spelling.
import { PortcullisError } from '@portcullis/runtime';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
// Package segments written as `pkg["my-team"]` show up in slash form with characters a Rego
// identifier cannot hold, so the slash form accepts a slightly wider set.
const SLASH_SEGMENT = /^[A-Za-z0-9_-]+$/;
const MAX_ENTRYPOINT_LENGTH = 512;

/**
 * Normalises an entrypoint to OPA's slash form: `envoy.authz.allow`, `data.envoy.authz.allow`,
 * `/envoy/authz/allow` and `envoy/authz/allow/` all become `envoy/authz/allow`.
 * Dotted spellings must consist of Rego identifiers (`data.` prefix optional); slash spellings are
 * taken literally (a leading `data/` is a segment, not the root document).
 * Throws `validation_failed` naming the entrypoint and the reason.
 */
export function normalizeEntrypoint(entrypoint: string): string {
  const reject = (reason: string): never => {
    throw new PortcullisError('validation_failed', `entrypoint ${JSON.stringify(entrypoint)}: ${reason}`, {
      details: [{ field: 'entrypoints', entrypoint, reason }],
    });
  };
  if (entrypoint.length === 0) reject('is empty');
  if (entrypoint.length > MAX_ENTRYPOINT_LENGTH) reject(`is longer than ${MAX_ENTRYPOINT_LENGTH} characters`);
  let segments: string[];
  if (entrypoint.includes('/')) {
    segments = entrypoint.replace(/^\/+/, '').replace(/\/+$/, '').split('/');
    for (const segment of segments) {
      if (!SLASH_SEGMENT.test(segment)) {
        reject(
          segment === ''
            ? 'has an empty path segment'
            : `segment ${JSON.stringify(segment)} is not a valid name`,
        );
      }
    }
  } else {
    segments = entrypoint.split('.');
    if (segments[0] === 'data') segments.shift();
    for (const segment of segments) {
      if (!IDENTIFIER.test(segment)) {
        reject(
          segment === ''
            ? 'has an empty segment'
            : `segment ${JSON.stringify(segment)} is not a Rego identifier (write path segments with "/" instead)`,
        );
      }
    }
  }
  if (segments.length === 0) reject('names the whole data document, not a rule or package');
  return segments.join('/');
}

/**
 * Normalises a list of entrypoints, keeping the first occurrence of each and the given order:
 * `opa build` numbers entrypoints in the order given, and the WASM module's entrypoint ids follow it.
 */
export function normalizeEntrypoints(entrypoints: readonly string[]): string[] {
  return [...new Set(entrypoints.map(normalizeEntrypoint))];
}

/** The Rego reference of a normalised entrypoint: `envoy/authz/allow` → `data.envoy.authz.allow`. */
export function entrypointRef(entrypoint: string): string {
  return normalizeEntrypoint(entrypoint)
    .split('/')
    .reduce(
      (ref, segment) =>
        IDENTIFIER.test(segment) ? `${ref}.${segment}` : `${ref}[${JSON.stringify(segment)}]`,
      'data',
    );
}
