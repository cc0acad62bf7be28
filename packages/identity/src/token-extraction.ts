// Finding JWTs in a request the way Envoy's jwt_authn extractor does for Istio's jwtRules.
import type { JwtRule } from './request-authentication.ts';

/** Where a token was found. Header names are lower-case. */
export type TokenLocation =
  | { readonly kind: 'header'; readonly name: string; readonly prefix: string }
  | { readonly kind: 'param'; readonly name: string }
  | { readonly kind: 'cookie'; readonly name: string };

/** Request headers as Node and most frameworks hand them over; names are matched case-insensitively. */
export type HeaderInput = Readonly<Record<string, string | readonly string[] | undefined>>;

/** The query: its raw text (leading "?" optional, the query component only), parsed params, or a map. */
export type QueryInput =
  | string
  | URLSearchParams
  | Readonly<Record<string, string | readonly string[] | undefined>>;

export interface TokenRequest {
  readonly headers: HeaderInput;
  readonly query?: QueryInput;
  /** Cookies already parsed; when absent they are read from the `cookie` header(s). */
  readonly cookies?: Readonly<Record<string, string>>;
}

/** One distinct token value, every location it was found at, and the rules that read those locations. */
export interface FoundToken {
  readonly token: string;
  readonly locations: readonly TokenLocation[];
  readonly rules: readonly JwtRule[];
}

interface LocationSpec {
  readonly location: TokenLocation;
  readonly rules: readonly JwtRule[];
}

const AUTHORIZATION: { name: string; prefix: string } = { name: 'authorization', prefix: 'Bearer ' };
const ACCESS_TOKEN = 'access_token';

/**
 * The jwtRules that apply to one workload, compiled for extraction: which headers, query
 * parameters and cookies to read, and which headers the rules write (so an enforcement point can
 * strip client-sent copies). Immutable and safe to share between concurrent requests.
 */
export class RuleScope {
  readonly rules: readonly JwtRule[];
  /** Lower-case names of every `outputPayloadToHeader` and `outputClaimToHeaders` header of these rules. */
  readonly outputHeaders: readonly string[];
  private readonly headers = new Map<string, LocationSpec[]>();
  private readonly params = new Map<string, LocationSpec>();
  private readonly cookies = new Map<string, LocationSpec>();
  private readonly order = new Map<JwtRule, number>();

  constructor(rules: readonly JwtRule[]) {
    this.rules = Object.freeze([...rules]);
    const outputs = new Set<string>();
    rules.forEach((rule, index) => {
      this.order.set(rule, index);
      const defaults =
        rule.fromHeaders.length === 0 && rule.fromParams.length === 0 && rule.fromCookies.length === 0;
      for (const header of defaults ? [AUTHORIZATION] : rule.fromHeaders)
        this.addHeader(header.name, header.prefix, rule);
      for (const param of defaults ? [ACCESS_TOKEN] : rule.fromParams) {
        add(this.params, param, { kind: 'param', name: param }, rule);
      }
      for (const cookie of rule.fromCookies)
        add(this.cookies, cookie, { kind: 'cookie', name: cookie }, rule);
      if (rule.outputPayloadToHeader !== undefined) outputs.add(rule.outputPayloadToHeader);
      for (const claim of rule.outputClaimToHeaders) outputs.add(claim.header);
    });
    this.outputHeaders = Object.freeze([...outputs]);
  }

  private addHeader(name: string, prefix: string, rule: JwtRule): void {
    let specs = this.headers.get(name);
    if (!specs) {
      specs = [];
      this.headers.set(name, specs);
    }
    const existing = specs.find((s) => s.location.kind === 'header' && s.location.prefix === prefix);
    if (existing) (existing.rules as JwtRule[]).push(rule);
    else specs.push({ location: { kind: 'header', name, prefix }, rules: [rule] });
  }

  /**
   * Every distinct token in the request, in the order Envoy looks (headers, then query parameters,
   * then cookies). The same value found at several locations is one token. Pure: never throws on
   * odd input, and reads only the locations the rules name.
   */
  extract(request: TokenRequest): FoundToken[] {
    const found = new Collector(this.order);
    if (this.headers.size > 0) {
      for (const key of Object.keys(request.headers)) {
        const specs = this.headers.get(key) ?? this.headers.get(key.toLowerCase());
        if (specs === undefined) continue;
        const value = request.headers[key];
        if (value === undefined) continue;
        for (const spec of specs) {
          const prefix = spec.location.kind === 'header' ? spec.location.prefix : '';
          if (typeof value === 'string') found.add(headerToken(value, prefix), spec);
          else if (Array.isArray(value)) {
            for (const item of value) found.add(headerToken(String(item), prefix), spec);
          }
        }
      }
    }
    if (this.params.size > 0 && request.query !== undefined) {
      const query = request.query;
      const parsed = typeof query === 'string' ? new URLSearchParams(query) : query;
      for (const [name, spec] of this.params) {
        const values = parsed instanceof URLSearchParams ? parsed.getAll(name) : ownValues(parsed, name);
        for (const value of values) found.add(value, spec);
      }
    }
    if (this.cookies.size > 0) {
      if (request.cookies !== undefined) {
        for (const [name, spec] of this.cookies) {
          if (Object.hasOwn(request.cookies, name)) found.add(request.cookies[name], spec);
        }
      } else {
        for (const key of Object.keys(request.headers)) {
          if (key.toLowerCase() !== 'cookie') continue;
          const value = request.headers[key];
          const lines = typeof value === 'string' ? [value] : Array.isArray(value) ? value : [];
          for (const line of lines) this.readCookies(String(line), found);
        }
      }
    }
    return found.result();
  }

  private readCookies(header: string, found: Collector): void {
    for (const pair of header.split(';')) {
      const eq = pair.indexOf('=');
      if (eq === -1) continue;
      const spec = this.cookies.get(pair.slice(0, eq).trim());
      if (spec === undefined) continue;
      let value = pair.slice(eq + 1).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      found.add(value, spec);
    }
  }
}

function add(map: Map<string, LocationSpec>, name: string, location: TokenLocation, rule: JwtRule): void {
  const spec = map.get(name);
  if (spec) (spec.rules as JwtRule[]).push(rule);
  else map.set(name, { location, rules: [rule] });
}

function ownValues(
  query: Readonly<Record<string, string | readonly string[] | undefined>>,
  name: string,
): readonly string[] {
  if (!Object.hasOwn(query, name)) return [];
  const value = query[name];
  return typeof value === 'string' ? [value] : Array.isArray(value) ? value : [];
}

/**
 * Envoy's reading of a header with a value prefix: the prefix may appear anywhere in the value
 * (case-sensitively), the token starts at the next base64url-or-dot character and runs to the end.
 * A header without the prefix holds no token (so `Authorization: Basic …` stays anonymous).
 */
export function headerToken(value: string, prefix: string): string | undefined {
  if (prefix === '') return value;
  const at = value.indexOf(prefix);
  if (at === -1) return undefined;
  for (let i = at + prefix.length; i < value.length; i++) {
    if (isJwtChar(value.charCodeAt(i))) return value.slice(i);
  }
  // As Envoy: with nothing token-like after the prefix, the whole value goes on to fail verification.
  return value;
}

function isJwtChar(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2d ||
    c === 0x5f ||
    c === 0x2e
  );
}

class Collector {
  private tokens: Map<string, { locations: TokenLocation[]; specs: LocationSpec[] }> | undefined;

  constructor(private readonly order: ReadonlyMap<JwtRule, number>) {}

  add(token: string | undefined, spec: LocationSpec): void {
    if (token === undefined) return;
    this.tokens ??= new Map();
    const entry = this.tokens.get(token);
    if (entry === undefined) this.tokens.set(token, { locations: [spec.location], specs: [spec] });
    else if (!entry.specs.includes(spec)) {
      entry.locations.push(spec.location);
      entry.specs.push(spec);
    }
  }

  result(): FoundToken[] {
    if (this.tokens === undefined) return [];
    const out: FoundToken[] = [];
    for (const [token, { locations, specs }] of this.tokens) {
      out.push({ token, locations, rules: specs.length === 1 ? specs[0]!.rules : this.union(specs) });
    }
    return out;
  }

  private union(specs: readonly LocationSpec[]): JwtRule[] {
    const rules = new Set<JwtRule>();
    for (const spec of specs) for (const rule of spec.rules) rules.add(rule);
    return [...rules].sort((a, b) => (this.order.get(a) ?? 0) - (this.order.get(b) ?? 0));
  }
}
