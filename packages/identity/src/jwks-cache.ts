// Issuers' JSON Web Key Sets: fetched over HTTP(S), imported once, cached per issuer and URI, refreshed with limits.
import { type CryptoKey, importJWK, type JWK } from 'jose';
import { AuthenticationError, quote } from './errors.ts';
import { isJwtAlgorithm, JWT_ALGORITHMS, type JwtAlgorithm, keyFitsAlgorithm } from './jwt-algorithms.ts';
import { DEFAULT_JWKS_TIMEOUT_MS } from './request-authentication.ts';

/** Where an issuer's keys come from; a `JwtRule` is one. Exactly one of `jwks`, `jwksUri`, or neither (OpenID discovery). */
export interface JwksSource {
  readonly issuer: string;
  readonly jwksUri?: string | undefined;
  /** Inline JWKS document (JSON text). */
  readonly jwks?: string | undefined;
  readonly timeoutMs?: number;
}

export type JwksFetchTrigger = 'initial' | 'expired' | 'unknown_kid' | 'retry';

/** One fetch of a key set, for metrics (`…_jwks_fetches_total{outcome}`, `…_jwks_fetch_duration_seconds`). */
export interface JwksFetchEvent {
  readonly issuer: string;
  readonly uri: string;
  readonly trigger: JwksFetchTrigger;
  readonly outcome: 'success' | 'failure';
  readonly durationSeconds: number;
  /** Usable keys in the new set (success only). */
  readonly keyCount: number | undefined;
  /** Why it failed (failure only); the previous keys, if any, stay in use. */
  readonly error: string | undefined;
}

export interface JwksCacheHooks {
  /** Called after every fetch attempt. Must not throw. */
  readonly onFetch?: (event: JwksFetchEvent) => void;
}

export interface JwksCacheOptions {
  /** Component name for health reporting (default `jwks-cache`). */
  readonly name?: string;
  /** The fetch implementation (default: the global one). */
  readonly fetch?: typeof fetch;
  /** Clock in epoch milliseconds (default `Date.now`); drives expiry and refresh limits, not network timeouts. */
  readonly now?: () => number;
  /** Lower bound on how long a fetched set is fresh, whatever `Cache-Control: max-age` says; also the default. */
  readonly minRefreshMs?: number;
  /** Upper bound on how long a fetched set is fresh. */
  readonly maxRefreshMs?: number;
  /** A token naming an unknown kid triggers at most one fetch per issuer per this interval. */
  readonly unknownKidRefreshMs?: number;
  /** After a failed fetch, the next attempt for that issuer waits at least this long. */
  readonly retryAfterFailureMs?: number;
  /** Upper bound on a JWKS or discovery response body, in bytes. */
  readonly maxResponseBytes?: number;
  /** A key set with more keys than this is refused. */
  readonly maxKeys?: number;
  readonly hooks?: JwksCacheHooks;
}

export const JWKS_CACHE_DEFAULTS = {
  minRefreshMs: 5 * 60_000,
  maxRefreshMs: 24 * 3_600_000,
  unknownKidRefreshMs: 30_000,
  // Envoy's jwks_async_fetch uses 1 s (failed_refetch_duration) for the same purpose.
  retryAfterFailureMs: 1_000,
  maxResponseBytes: 256 * 1024,
  maxKeys: 100,
} as const;

/** The state of one cached key set, for `/readyz`, logs and a key-age gauge. */
export interface JwksEntryStatus {
  readonly issuer: string;
  /** The JWKS URI, the discovery document's URI, or `inline`. */
  readonly uri: string;
  readonly keyCount: number;
  /** When the keys in use were fetched (epoch ms), if any are. */
  readonly fetchedAt: number | undefined;
  readonly ageSeconds: number | undefined;
  readonly expiresAt: number | undefined;
  /** The last fetch failed with this, and nothing has succeeded since. */
  readonly lastError: string | undefined;
}

const NO_KEYS: readonly CryptoKey[] = Object.freeze([]);

interface AlgorithmKeys {
  readonly byKid: Map<string, CryptoKey[]>;
  /** Keys that carry no kid: as in Envoy's jwt_verify_lib, they are candidates for any token. */
  readonly withoutKid: CryptoKey[];
  readonly all: CryptoKey[];
}

/** The result of looking a token's key up: the keys to try, and whether its kid (if any) is known. */
export interface KeyLookup {
  readonly keys: readonly CryptoKey[];
  readonly kidKnown: boolean;
}

/**
 * An issuer's imported verification keys, indexed by algorithm and kid. Immutable; the lookup
 * allocates nothing in the common case (a kid that names exactly the keys to try).
 */
export class KeySet {
  readonly fetchedAt: number;
  /** Usable JWKs (one JWK may serve several algorithms). */
  readonly size: number;
  /** Why individual JWKs were not used (private, symmetric, unsupported, too short, malformed). */
  readonly skipped: readonly string[];
  private readonly byAlg: ReadonlyMap<JwtAlgorithm, AlgorithmKeys>;

  private constructor(
    byAlg: ReadonlyMap<JwtAlgorithm, AlgorithmKeys>,
    size: number,
    skipped: readonly string[],
    fetchedAt: number,
  ) {
    this.byAlg = byAlg;
    this.size = size;
    this.skipped = skipped;
    this.fetchedAt = fetchedAt;
  }

  lookup(alg: JwtAlgorithm, kid: string | undefined): KeyLookup {
    const keys = this.byAlg.get(alg);
    if (keys === undefined) return { keys: NO_KEYS, kidKnown: false };
    if (kid === undefined) return { keys: keys.all, kidKnown: true };
    const named = keys.byKid.get(kid);
    if (named === undefined) return { keys: keys.withoutKid, kidKnown: false };
    return { keys: keys.withoutKid.length === 0 ? named : [...named, ...keys.withoutKid], kidKnown: true };
  }

  /** Imports every usable public key of a JWKS document for every algorithm it can verify. */
  static async fromDocument(document: unknown, maxKeys: number, fetchedAt: number): Promise<KeySet> {
    if (
      typeof document !== 'object' ||
      document === null ||
      !Array.isArray((document as { keys?: unknown }).keys)
    ) {
      throw new Error('not a JWKS document (a JSON object with a "keys" list)');
    }
    const jwks = (document as { keys: unknown[] }).keys;
    if (jwks.length > maxKeys) throw new Error(`the set has ${jwks.length} keys; the limit is ${maxKeys}`);
    // Imports run concurrently; results are indexed in document order so lookups and messages are stable.
    const imported = await Promise.all(jwks.map((jwk) => importVerificationKey(jwk)));
    const byAlg = new Map<JwtAlgorithm, AlgorithmKeys>();
    const skipped: string[] = [];
    let size = 0;
    imported.forEach((outcome, index) => {
      if (typeof outcome === 'string') {
        skipped.push(`key ${index}: ${outcome}`);
        return;
      }
      size++;
      for (const [alg, key] of outcome.keys) {
        let slot = byAlg.get(alg);
        if (slot === undefined) {
          slot = { byKid: new Map(), withoutKid: [], all: [] };
          byAlg.set(alg, slot);
        }
        slot.all.push(key);
        if (outcome.kid === undefined) slot.withoutKid.push(key);
        else {
          const named = slot.byKid.get(outcome.kid);
          if (named) named.push(key);
          else slot.byKid.set(outcome.kid, [key]);
        }
      }
    });
    if (size === 0) {
      throw new Error(`no usable verification key${skipped.length > 0 ? ` (${skipped.join('; ')})` : ''}`);
    }
    return new KeySet(byAlg, size, Object.freeze(skipped), fetchedAt);
  }
}

/** One JWK imported for every algorithm it can verify, or the reason it is not usable. */
async function importVerificationKey(
  jwk: unknown,
): Promise<{ kid: string | undefined; keys: [JwtAlgorithm, CryptoKey][] } | string> {
  const problem = unusable(jwk);
  if (problem !== undefined) return problem;
  const { kid, alg, kty, crv } = jwk as Record<string, unknown>;
  const algorithms = (alg === undefined ? JWT_ALGORITHMS : [alg]).filter(
    (a): a is JwtAlgorithm => isJwtAlgorithm(a) && keyFitsAlgorithm(kty, crv, a),
  );
  if (algorithms.length === 0) {
    return `no supported algorithm for kty ${quote(kty)}${alg === undefined ? '' : ` alg ${quote(alg)}`}`;
  }
  const keys: [JwtAlgorithm, CryptoKey][] = [];
  for (const a of algorithms) {
    const key = await importPublicKey(jwk as Record<string, unknown>, a);
    if (typeof key === 'string') return key;
    keys.push([a, key]);
  }
  return { kid: kid as string | undefined, keys };
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'priv'];

function unusable(jwk: unknown): string | undefined {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) return 'not an object';
  const key = jwk as Record<string, unknown>;
  if (key['kty'] === 'oct') return 'symmetric keys are never used';
  // A published private key is a provider's mistake; using it would still verify, but we refuse to touch it.
  if (PRIVATE_MEMBERS.some((m) => Object.hasOwn(key, m))) return 'private key material';
  if (key['use'] !== undefined && key['use'] !== 'sig') return `use is ${quote(key['use'])}, not "sig"`;
  if (Array.isArray(key['key_ops']) && !key['key_ops'].includes('verify')) return 'key_ops lacks "verify"';
  if (key['kid'] !== undefined && (typeof key['kid'] !== 'string' || key['kid'].length > 1024))
    return 'invalid kid';
  return undefined;
}

/** Imports only the public members, so stray JWK fields (ext, key_ops, x5c) cannot change how WebCrypto imports it. */
async function importPublicKey(jwk: Record<string, unknown>, alg: JwtAlgorithm): Promise<CryptoKey | string> {
  const { kty } = jwk;
  const members = kty === 'RSA' ? ['n', 'e'] : kty === 'EC' ? ['crv', 'x', 'y'] : ['crv', 'x'];
  const clean: Record<string, unknown> = { kty };
  for (const m of members) {
    if (typeof jwk[m] !== 'string') return `missing or invalid "${m}"`;
    clean[m] = jwk[m];
  }
  try {
    const key = await importJWK(clean as JWK, alg);
    if (key instanceof Uint8Array) return 'not an asymmetric key';
    const modulus = (key.algorithm as { modulusLength?: unknown }).modulusLength;
    if (kty === 'RSA' && (typeof modulus !== 'number' || modulus < 2048))
      return 'RSA keys shorter than 2048 bits are refused';
    return key;
  } catch (error) {
    return `cannot import for ${alg}: ${error instanceof Error ? error.message : String(error)}`;
  }
}

type EntryKind = 'remote' | 'discovery' | 'inline';

interface Entry {
  readonly key: string;
  readonly kind: EntryKind;
  readonly issuer: string;
  /** The URI fetched (JWKS or discovery document), or "inline". */
  readonly uri: string;
  keys: KeySet | undefined;
  expiresAt: number;
  /** Start of the last fetch attempt; limits unknown-kid refreshes. */
  lastAttemptAt: number;
  lastFailureAt: number | undefined;
  lastError: string | undefined;
  inflight: Promise<KeySet> | undefined;
}

/**
 * Caches key sets per issuer and source; a lifecycle component (`start`, `stop`, `status`). Contract:
 * - `peek` never waits: it returns the keys in use (even expired ones, starting a background refresh)
 *   or undefined when there are none yet; then `load` fetches them.
 * - Concurrent callers needing the same fetch share it; a failed fetch keeps the previous keys in
 *   use indefinitely (their age is visible in `snapshot()`), so an issuer outage does not turn into
 *   a mesh outage.
 * - Fetches are bounded by the rule's timeout and `maxResponseBytes`; no timers are left behind.
 */
export class JwksCache {
  /** Component name for health reporting. */
  readonly name: string;
  private readonly fetchImpl: typeof fetch;
  private readonly now: () => number;
  private readonly settings: {
    readonly minRefreshMs: number;
    readonly maxRefreshMs: number;
    readonly unknownKidRefreshMs: number;
    readonly retryAfterFailureMs: number;
    readonly maxResponseBytes: number;
    readonly maxKeys: number;
  };
  private readonly hooks: JwksCacheHooks;
  private readonly entries = new Map<string, Entry>();
  // Rules are long-lived objects: this spares the per-request string key of the map above.
  private readonly bySource = new WeakMap<JwksSource, Entry>();
  private readonly stopper = new AbortController();

  constructor(options: JwksCacheOptions = {}) {
    this.name = options.name ?? 'jwks-cache';
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    this.now = options.now ?? Date.now;
    this.hooks = options.hooks ?? {};
    this.settings = {
      minRefreshMs: options.minRefreshMs ?? JWKS_CACHE_DEFAULTS.minRefreshMs,
      maxRefreshMs: options.maxRefreshMs ?? JWKS_CACHE_DEFAULTS.maxRefreshMs,
      unknownKidRefreshMs: options.unknownKidRefreshMs ?? JWKS_CACHE_DEFAULTS.unknownKidRefreshMs,
      retryAfterFailureMs: options.retryAfterFailureMs ?? JWKS_CACHE_DEFAULTS.retryAfterFailureMs,
      maxResponseBytes: options.maxResponseBytes ?? JWKS_CACHE_DEFAULTS.maxResponseBytes,
      maxKeys: options.maxKeys ?? JWKS_CACHE_DEFAULTS.maxKeys,
    };
    for (const [name, value] of Object.entries(this.settings)) {
      if (!Number.isFinite(value) || value < 0)
        throw new RangeError(`JwksCache option ${name} must be a non-negative number`);
    }
    if (this.settings.minRefreshMs > this.settings.maxRefreshMs) {
      throw new RangeError('JwksCache option minRefreshMs must not exceed maxRefreshMs');
    }
  }

  /** The keys in use for a source, without waiting; starts a background refresh when they have expired. */
  peek(source: JwksSource): KeySet | undefined {
    const entry = this.entryFor(source);
    const keys = entry.keys;
    if (keys !== undefined && entry.kind !== 'inline') {
      const now = this.now();
      if (now >= entry.expiresAt && entry.inflight === undefined && !this.backingOff(entry, now)) {
        // The outcome is recorded on the entry and reported through hooks; the caller keeps the current keys.
        this.refresh(entry, source, 'expired').catch(() => undefined);
      }
    }
    return keys;
  }

  /** The keys for a source, fetching them if there are none yet. Rejects with `jwks_unavailable`. */
  load(source: JwksSource): Promise<KeySet> {
    const entry = this.entryFor(source);
    if (entry.keys !== undefined) return Promise.resolve(this.peek(source) ?? entry.keys);
    if (entry.inflight !== undefined) return entry.inflight;
    if (this.backingOff(entry, this.now())) return Promise.reject(this.unavailable(entry, entry.lastError));
    return this.refresh(entry, source, entry.lastFailureAt === undefined ? 'initial' : 'retry');
  }

  /**
   * A token names a key the current set lacks: fetch again, unless a fetch started less than
   * `unknownKidRefreshMs` ago (then join it if it is still running). Resolves to the newest keys;
   * when the refresh fails but older keys exist, resolves to those.
   */
  async refreshForUnknownKey(source: JwksSource): Promise<KeySet> {
    const entry = this.entryFor(source);
    if (entry.kind === 'inline' || entry.keys === undefined) return this.load(source);
    const pending =
      entry.inflight ??
      (this.now() - entry.lastAttemptAt >= this.settings.unknownKidRefreshMs
        ? this.refresh(entry, source, 'unknown_kid')
        : undefined);
    if (pending === undefined) return entry.keys;
    try {
      return await pending;
    } catch {
      // Recorded on the entry already; the old keys still answer for the kids they know.
      return entry.keys;
    }
  }

  /** Fetches a source's keys ahead of traffic; failures are recorded (see `snapshot`), not thrown. */
  async prefetch(source: JwksSource): Promise<void> {
    try {
      await this.load(source);
    } catch {
      // Recorded on the entry and reported through hooks.
    }
  }

  /** Every cached key set's state. */
  snapshot(): JwksEntryStatus[] {
    const now = this.now();
    return [...this.entries.values()].map((e) => ({
      issuer: e.issuer,
      uri: e.uri,
      keyCount: e.keys?.size ?? 0,
      fetchedAt: e.keys?.fetchedAt,
      ageSeconds: e.keys === undefined ? undefined : Math.max(0, (now - e.keys.fetchedAt) / 1000),
      expiresAt: e.keys === undefined || e.kind === 'inline' ? undefined : e.expiresAt,
      lastError: e.lastError,
    }));
  }

  /**
   * For `/readyz` (the shape of the runtime's `ComponentStatus`): `OK` when every set is usable and
   * its last fetch worked, `WARN` when some serve older keys after a failed refresh (still ready),
   * `ERROR` when some issuer has no keys at all after a failure.
   */
  status(): { state: 'OK' | 'WARN' | 'ERROR'; message?: string } {
    let worst: Entry | undefined;
    for (const e of this.entries.values()) {
      if (e.lastError === undefined) continue;
      if (e.keys === undefined) {
        worst = e;
        break;
      }
      worst ??= e;
    }
    if (worst === undefined) return { state: 'OK' };
    const keys = worst.keys === undefined ? 'no keys' : 'serving older keys';
    return {
      state: worst.keys === undefined ? 'ERROR' : 'WARN',
      message: `issuer ${quote(worst.issuer)} (${keys}): ${worst.lastError}`,
    };
  }

  /** Lifecycle start: nothing to do, keys load on first use or through `prefetch`. */
  async start(): Promise<void> {}

  /** Aborts fetches in flight and refuses new ones; resolves once they have settled. Idempotent. */
  async stop(): Promise<void> {
    this.stopper.abort(new Error('the JWKS cache was stopped'));
    await Promise.allSettled([...this.entries.values()].map((e) => e.inflight));
  }

  /**
   * Drops the key sets no given source uses (call with every rule in force after a policy change),
   * so removed issuers leave `snapshot()` and `status()`. Returns how many were dropped.
   */
  retain(sources: Iterable<JwksSource>): number {
    const keep = new Set<string>();
    for (const source of sources) keep.add(entryKey(source).key);
    let dropped = 0;
    for (const key of [...this.entries.keys()]) {
      if (!keep.has(key)) {
        this.entries.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  private entryFor(source: JwksSource): Entry {
    const known = this.bySource.get(source);
    // `known.key` is the very string the map holds, so this check hashes nothing new.
    if (known !== undefined && this.entries.get(known.key) === known) return known;
    const { kind, uri, key } = entryKey(source);
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = {
        key,
        kind,
        issuer: source.issuer,
        uri,
        keys: undefined,
        expiresAt: 0,
        lastAttemptAt: Number.NEGATIVE_INFINITY,
        lastFailureAt: undefined,
        lastError: undefined,
        inflight: undefined,
      };
      this.entries.set(key, entry);
    }
    this.bySource.set(source, entry);
    return entry;
  }

  private backingOff(entry: Entry, now: number): boolean {
    return entry.lastFailureAt !== undefined && now - entry.lastFailureAt < this.settings.retryAfterFailureMs;
  }

  private unavailable(entry: Entry, reason: string | undefined, cause?: unknown): AuthenticationError {
    return new AuthenticationError(
      'jwks_unavailable',
      `the keys of issuer ${quote(entry.issuer)} are unavailable: ${reason ?? 'not fetched yet'}`,
      { issuer: entry.issuer, cause },
    );
  }

  private refresh(entry: Entry, source: JwksSource, trigger: JwksFetchTrigger): Promise<KeySet> {
    entry.lastAttemptAt = this.now();
    const started = performance.now();
    const run = async (): Promise<KeySet> => {
      let keys: KeySet;
      try {
        const { document, maxAgeSeconds } = await this.download(entry, source);
        keys = await KeySet.fromDocument(document, this.settings.maxKeys, this.now());
        const { minRefreshMs, maxRefreshMs } = this.settings;
        const freshMs = Math.min(maxRefreshMs, Math.max(minRefreshMs, (maxAgeSeconds ?? 0) * 1000));
        entry.keys = keys;
        entry.expiresAt = keys.fetchedAt + freshMs;
        entry.lastError = undefined;
        entry.lastFailureAt = undefined;
      } catch (cause) {
        const reason = describe(cause);
        entry.lastError = reason;
        entry.lastFailureAt = this.now();
        this.report(entry, trigger, started, undefined, reason);
        throw this.unavailable(entry, reason, cause);
      } finally {
        entry.inflight = undefined;
      }
      this.report(entry, trigger, started, keys.size, undefined);
      return keys;
    };
    const pending = run();
    entry.inflight = pending;
    return pending;
  }

  private report(
    entry: Entry,
    trigger: JwksFetchTrigger,
    started: number,
    keyCount: number | undefined,
    error: string | undefined,
  ): void {
    this.hooks.onFetch?.({
      issuer: entry.issuer,
      uri: entry.uri,
      trigger,
      outcome: error === undefined ? 'success' : 'failure',
      durationSeconds: (performance.now() - started) / 1000,
      keyCount,
      error,
    });
  }

  private async download(
    entry: Entry,
    source: JwksSource,
  ): Promise<{ document: unknown; maxAgeSeconds?: number }> {
    if (entry.kind === 'inline') return { document: JSON.parse(source.jwks as string) };
    if (this.stopper.signal.aborted) throw new Error('the JWKS cache was stopped');
    const signal = AbortSignal.any([
      this.stopper.signal,
      AbortSignal.timeout(source.timeoutMs ?? DEFAULT_JWKS_TIMEOUT_MS),
    ]);
    let jwksUri = entry.uri;
    if (entry.kind === 'discovery') {
      const { body } = await this.get(entry.uri, signal);
      const discovered = (body as { jwks_uri?: unknown } | null)?.jwks_uri;
      if (typeof discovered !== 'string' || !/^https?:\/\//i.test(discovered)) {
        throw new Error(`the OpenID configuration at ${entry.uri} has no http(s) jwks_uri`);
      }
      jwksUri = discovered;
    }
    const { body, maxAgeSeconds } = await this.get(jwksUri, signal);
    return { document: body, maxAgeSeconds };
  }

  private async get(uri: string, signal: AbortSignal): Promise<{ body: unknown; maxAgeSeconds?: number }> {
    let response: Response;
    try {
      response = await this.fetchImpl(uri, {
        signal,
        headers: { accept: 'application/json' },
        redirect: 'follow',
      });
    } catch (cause) {
      throw new Error(`GET ${uri} failed: ${describe(signal.aborted ? signal.reason : cause)}`, { cause });
    }
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => undefined);
      throw new Error(`GET ${uri} answered HTTP ${response.status}`);
    }
    const text = await readLimited(response, this.settings.maxResponseBytes, uri);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (cause) {
      throw new Error(`GET ${uri} returned something other than JSON`, { cause });
    }
    const maxAgeSeconds = maxAge(response.headers.get('cache-control'));
    return maxAgeSeconds === undefined ? { body } : { body, maxAgeSeconds };
  }
}

async function readLimited(response: Response, limit: number, uri: string): Promise<string> {
  const tooLarge = (size: string) => new Error(`GET ${uri} returned ${size} bytes; the limit is ${limit}`);
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (declared > limit) {
    await response.body?.cancel().catch(() => undefined);
    throw tooLarge(String(declared));
  }
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge(`more than ${limit}`);
    }
    chunks.push(value);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch (cause) {
    throw new Error(`GET ${uri} returned a body that is not UTF-8`, { cause });
  }
}

/** `max-age` of a Cache-Control header; `no-store` and `no-cache` count as zero (then the minimum refresh applies). */
export function maxAge(header: string | null): number | undefined {
  if (header === null) return undefined;
  let result: number | undefined;
  for (const directive of header.split(',')) {
    const [name = '', value] = directive.split('=', 2).map((s) => s.trim());
    const lower = name.toLowerCase();
    if (lower === 'no-store' || lower === 'no-cache') return 0;
    if (lower === 'max-age' && value !== undefined) {
      const seconds = Number(value.replace(/^"(.*)"$/, '$1'));
      if (Number.isInteger(seconds) && seconds >= 0) result = seconds;
    }
  }
  return result;
}

function entryKey(source: JwksSource): { kind: EntryKind; uri: string; key: string } {
  const kind: EntryKind =
    source.jwks !== undefined ? 'inline' : source.jwksUri !== undefined ? 'remote' : 'discovery';
  const uri =
    kind === 'inline'
      ? 'inline'
      : kind === 'remote'
        ? (source.jwksUri as string)
        : discoveryUri(source.issuer);
  return { kind, uri, key: `${source.issuer}\n${uri}${kind === 'inline' ? `\n${source.jwks}` : ''}` };
}

function discoveryUri(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    // Node's fetch hides the network reason (ECONNREFUSED, …) in `cause`.
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return `${error.message}${cause}`;
  }
  return String(error);
}
