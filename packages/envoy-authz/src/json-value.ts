// JSON value types for input documents and decisions, and object building that keeps hostile keys (`__proto__`) as plain data.

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/** A plain (non-array, non-null) object, as decisions and parsed bodies hold them. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Sets an own, enumerable property. Plain assignment would treat a request-supplied
 * `__proto__` key as the object's prototype instead of data; defineProperty never does.
 */
export function setOwn<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** An object from a Map, every key an own property (see setOwn). */
export function objectFromMap<T>(map: ReadonlyMap<string, T>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of map) setOwn(out, k, v);
  return out;
}

/** encoding/json's limit (scanner.go maxNestingDepth), past which OPA-Envoy fails the request. */
const MAX_JSON_DEPTH = 10_000;

/**
 * JSON.parse with Go's nesting limit checked first, so a hostile body cannot build a structure
 * that later overflows the stack of whoever serializes the input. Throws SyntaxError.
 * Numbers are JS doubles: integers past 2^53 lose precision, where Go keeps json.Number text.
 */
export function parseJson(text: string): JsonValue {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_JSON_DEPTH) throw new SyntaxError('exceeded max depth');
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return JSON.parse(text) as JsonValue;
}
