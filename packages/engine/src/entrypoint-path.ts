// Normalizes the ways callers name a policy decision (`envoy.authz.allow`, `/data/envoy/authz/allow/`) to
// the slash form compiled modules use for entrypoints (`envoy/authz/allow`).
import { EngineError } from './engine-error.ts';

export function normalizeEntrypoint(path: string): string {
  const segments = path.trim().replace(/\./g, '/').split('/');
  let start = 0;
  let end = segments.length;
  while (start < end && segments[start] === '') start++;
  while (end > start && segments[end - 1] === '') end--;
  // `data` is the root document; a package can never be named `data`, so dropping it is unambiguous.
  if (segments[start] === 'data') start++;
  const parts = segments.slice(start, end);
  if (parts.length === 0 || parts.some((p) => p === '')) {
    throw new EngineError('invalid_path', `not a policy path: ${JSON.stringify(path)}`, {
      details: { path },
    });
  }
  return parts.join('/');
}
