// The idempotency key of a revision: sha256 of the canonical JSON of what was posted.
import { createHash } from 'node:crypto';

/** JSON with object keys sorted at every level, so equal content always gives equal text. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

export interface RevisionContent {
  modules: Record<string, string>;
  data: unknown;
  entrypoints: string[];
  strict: boolean;
}

/** Entrypoints are a set: their order does not make a different revision. */
export function contentHash(c: RevisionContent): string {
  const entrypoints = [...new Set(c.entrypoints)].sort();
  return createHash('sha256')
    .update(canonicalJson({ modules: c.modules, data: c.data, entrypoints, strict: c.strict }))
    .digest('hex');
}
