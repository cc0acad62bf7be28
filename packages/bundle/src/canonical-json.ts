// JSON with sorted object keys, so equal documents serialise to equal bytes (deterministic bundles).
import { PortcullisError } from '@portcullis/runtime';

/**
 * Serialises a JSON value with object keys sorted by UTF-16 code unit order and no whitespace.
 * Throws `validation_failed` for anything JSON cannot represent faithfully (undefined, functions,
 * symbols, bigints, non-finite numbers, class instances other than plain objects and arrays,
 * cycles) instead of silently dropping or converting it the way `JSON.stringify` does.
 */
export function canonicalJson(value: unknown, field = 'data'): string {
  const parts: string[] = [];
  write(value, field, parts, new Set());
  return parts.join('');
}

function write(value: unknown, at: string, out: string[], seen: Set<object>): void {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') {
    out.push(JSON.stringify(value));
    return;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) fail(at, `${value} is not a JSON number`);
    out.push(JSON.stringify(value));
    return;
  }
  if (typeof value !== 'object') fail(at, `a ${typeof value} is not a JSON value`);
  if (seen.has(value)) fail(at, 'the value contains a cycle');
  seen.add(value);
  if (Array.isArray(value)) {
    out.push('[');
    value.forEach((item: unknown, i) => {
      if (i > 0) out.push(',');
      write(item, `${at}[${i}]`, out, seen);
    });
    out.push(']');
  } else {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) fail(at, 'only plain objects and arrays are JSON');
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).sort();
    out.push('{');
    keys.forEach((key, i) => {
      if (i > 0) out.push(',');
      out.push(JSON.stringify(key), ':');
      write(record[key], `${at}.${key}`, out, seen);
    });
    out.push('}');
  }
  seen.delete(value);
}

function fail(at: string, reason: string): never {
  throw new PortcullisError('validation_failed', `${at}: ${reason}`, { details: [{ field: at, reason }] });
}

/** True for a non-null, non-array object: the shape OPA requires of a bundle's root data document. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
