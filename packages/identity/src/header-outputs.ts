// The upstream request changes an authentication implies, as Envoy's jwt_authn filter makes them for Istio.
import type { AuthenticationOutcome } from './jwt-authenticator.ts';

/**
 * What to change on the request before it goes upstream. `set` and `remove` are disjoint, so the
 * order of applying them does not matter. Names are lower-case.
 */
export interface HeaderMutations {
  /** Headers to set, replacing any value the client sent. */
  readonly set: ReadonlyArray<readonly [name: string, value: string]>;
  /** Headers to delete: client-sent copies of output headers, and the token's header unless forwarded. */
  readonly remove: readonly string[];
  /** Query parameters to delete from the upstream path (the token's, unless forwarded); see `removeQueryParams`. */
  readonly removeQueryParams: readonly string[];
}

/**
 * Envoy's behaviour, which Istio configures:
 * - every output header of the rules in scope is stripped from the incoming request first, verified
 *   or not, so a client cannot forge one;
 * - `outputPayloadToHeader` carries the token's payload segment as it was (base64url, unpadded);
 * - `outputClaimToHeaders` writes strings as they are, numbers and booleans as Envoy prints them, and
 *   objects and lists as base64 of their JSON; a missing, null or empty claim writes nothing;
 * - unless `forwardOriginalToken`, the token's header is removed entirely and its query parameter is
 *   removed from the path; a token in a cookie is left in place, as Envoy leaves it.
 */
export function upstreamHeaderMutations(outcome: AuthenticationOutcome): HeaderMutations {
  const set: [string, string][] = [];
  const remove = new Set<string>(outcome.outputHeaders);
  const removeQueryParams: string[] = [];
  if (!outcome.anonymous) {
    const rule = outcome.rule;
    if (rule.outputPayloadToHeader !== undefined) {
      const token = outcome.rawToken;
      set.push([rule.outputPayloadToHeader, token.slice(token.indexOf('.') + 1, token.lastIndexOf('.'))]);
    }
    for (const { header, claim } of rule.outputClaimToHeaders) {
      const value = claimHeaderValue(outcome.claims, claim);
      if (value !== undefined) set.push([header, value]);
    }
    if (!rule.forwardOriginalToken) {
      for (const location of outcome.locations) {
        if (location.kind === 'header') remove.add(location.name);
        else if (location.kind === 'param' && !removeQueryParams.includes(location.name)) {
          removeQueryParams.push(location.name);
        }
      }
    }
    for (const [name] of set) remove.delete(name);
  }
  return { set, remove: [...remove], removeQueryParams };
}

/**
 * A claim rendered for a header as Envoy's jwt_authn `claim_to_headers` renders it; `path` may name
 * a nested claim with dots (`realm.roles`), and is always split at dots, as Envoy does. Undefined
 * when there is nothing to write, or when the text holds control characters (a header cannot carry them).
 */
export function claimHeaderValue(
  claims: Readonly<Record<string, unknown>>,
  path: string,
): string | undefined {
  let value: unknown = claims;
  for (const name of path.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, name)) {
      return undefined;
    }
    value = (value as Record<string, unknown>)[name];
  }
  let text: string;
  if (typeof value === 'string') text = value;
  else if (typeof value === 'number') text = formatClaimNumber(value);
  else if (typeof value === 'boolean') text = value ? 'true' : 'false';
  else if (typeof value === 'object' && value !== null)
    text = Buffer.from(JSON.stringify(value)).toString('base64');
  else return undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
  return text === '' || /[\x00-\x08\x0a-\x1f\x7f]/.test(text) ? undefined : text;
}

const TWO_TO_THE_64 = 2 ** 64;

/**
 * Envoy's `convertClaimDoubleToString`: a non-negative integer below 2^64 prints as an integer;
 * anything else as C's `std::to_string(double)`, i.e. `%f` (six decimals, exact, ties to even).
 */
export function formatClaimNumber(value: number): string {
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : value < 0 ? '-inf' : 'nan';
  if (value >= 0 && value < TWO_TO_THE_64 && Number.isInteger(value)) return BigInt(value).toString();
  return printfFixed6(value);
}

/** `%f` of a finite double, computed exactly from its binary value. */
function printfFixed6(value: number): string {
  const negative = value < 0 || Object.is(value, -0);
  const [mantissa, exponent] = decompose(Math.abs(value));
  // |value| * 10^6 = mantissa * 10^6 * 2^exponent; round it to an integer, ties to even.
  let scaled = mantissa * 1_000_000n;
  if (exponent >= 0) scaled <<= BigInt(exponent);
  else {
    const shift = BigInt(-exponent);
    const quotient = scaled >> shift;
    const remainder = scaled - (quotient << shift);
    const half = 1n << (shift - 1n);
    scaled = remainder > half || (remainder === half && (quotient & 1n) === 1n) ? quotient + 1n : quotient;
  }
  const digits = scaled.toString().padStart(7, '0');
  return `${negative ? '-' : ''}${digits.slice(0, -6)}.${digits.slice(-6)}`;
}

/** A finite non-negative double as mantissa * 2^exponent, both exact. */
function decompose(value: number): [bigint, number] {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value);
  const bits = view.getBigUint64(0);
  const biased = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & 0xfffffffffffffn;
  return biased === 0 ? [fraction, -1074] : [fraction | (1n << 52n), biased - 1075];
}

/**
 * Removes query parameters by (decoded) name from a request path, keeping every other parameter's
 * text and order as they were; for enforcement points that rewrite `:path` themselves.
 */
export function removeQueryParams(path: string, names: readonly string[]): string {
  if (names.length === 0) return path;
  const q = path.indexOf('?');
  if (q === -1) return path;
  const hash = path.indexOf('#', q);
  const query = path.slice(q + 1, hash === -1 ? undefined : hash);
  const kept = query.split('&').filter((pair) => {
    if (pair === '') return false;
    const eq = pair.indexOf('=');
    return !names.includes(decodeQueryName(eq === -1 ? pair : pair.slice(0, eq)));
  });
  const rest = hash === -1 ? '' : path.slice(hash);
  return `${path.slice(0, q)}${kept.length > 0 ? `?${kept.join('&')}` : ''}${rest}`;
}

function decodeQueryName(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw;
  }
}
