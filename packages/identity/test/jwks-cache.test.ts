// The JWKS cache against a real HTTP server: caching, max-age clamps, rotation, outages, forged-kid storms, limits.
import { randomUUID } from 'node:crypto';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuthenticationError } from '../src/errors.ts';
import { JwksCache, type JwksFetchEvent, maxAge } from '../src/jwks-cache.ts';
import { JwtAuthenticator } from '../src/jwt-authenticator.ts';
import type { JwtRule } from '../src/request-authentication.ts';
import { JwksServer } from './support/jwks-server.ts';
import { jwksOf, makeKey, rule, sign, TestClock, type TestKey } from './support/tokens.ts';

const ISS = 'https://issuer.example';
let k1: TestKey;
let k2: TestKey;

let server: JwksServer;
let clock: TestClock;
let events: JwksFetchEvent[];
let cache: JwksCache;
let auth: JwtAuthenticator;
let remote: JwtRule;

beforeAll(async () => {
  [k1, k2] = await Promise.all([makeKey('ES256', 'k1'), makeKey('ES256', 'k2')]);
});

beforeEach(async () => {
  server = await JwksServer.start(jwksOf(k1));
  clock = new TestClock();
  events = [];
  cache = new JwksCache({ now: clock.now, hooks: { onFetch: (e) => events.push(e) } });
  auth = new JwtAuthenticator({ jwks: cache, now: clock.now });
  remote = rule({ issuer: ISS, jwksUri: server.jwksUri });
});

afterEach(async () => {
  await cache.stop();
  await server.close();
});

function token(
  key: TestKey,
  extra: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
): Promise<string> {
  return sign(
    key,
    { iss: ISS, sub: 'svc', iat: clock.seconds, exp: clock.seconds + 30 * 86_400, ...extra },
    header,
  );
}

async function code(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'ok',
    (error: unknown) => (error instanceof AuthenticationError ? error.code : `crash: ${String(error)}`),
  );
}

describe('JwksCache', () => {
  it('fetches once, shares the first fetch among concurrent requests, then serves from the cache', async () => {
    const t = await token(k1);
    await Promise.all(Array.from({ length: 50 }, () => auth.verify(t, [remote])));
    for (let i = 0; i < 20; i++) await auth.verify(t, [remote]);
    expect(server.jwksRequests).toBe(1);
    expect(events).toMatchObject([
      { issuer: ISS, uri: server.jwksUri, trigger: 'initial', outcome: 'success', keyCount: 1 },
    ]);
  });

  it.each<[string, string | undefined, number]>([
    ['max-age within the bounds', 'public, max-age=600', 600],
    ['max-age below the minimum', 'max-age=1', 300],
    ['max-age above the maximum', 'max-age=999999999', 86_400],
    ['no-store', 'no-store', 300],
    ['no Cache-Control', undefined, 300],
  ])('honours Cache-Control (%s) clamped to the refresh bounds', async (_, cacheControl, freshSeconds) => {
    server.state.cacheControl = cacheControl;
    const t = await token(k1);
    await auth.verify(t, [remote]);
    const [entry] = cache.snapshot();
    expect(entry?.expiresAt).toBe(clock.ms + freshSeconds * 1000);

    clock.advance(freshSeconds - 1);
    await auth.verify(t, [remote]);
    expect(cache.snapshot()[0]?.expiresAt).toBe(entry?.expiresAt);

    clock.advance(2);
    await auth.verify(t, [remote]);
    await vi.waitFor(() => expect(events).toHaveLength(2));
    expect(events[1]).toMatchObject({ trigger: 'expired', outcome: 'success' });
    expect(server.jwksRequests).toBe(2);
  });

  it('follows a rotation to a new kid (old one retired) without a failed request', async () => {
    await auth.verify(await token(k1), [remote]);
    clock.advance(60);
    server.state.body = jwksOf(k2);
    await expect(auth.verify(await token(k2), [remote])).resolves.toMatchObject({ kid: 'k2' });
    expect(events.map((e) => e.trigger)).toEqual(['initial', 'unknown_kid']);
    // The retired key is gone, and asking for it again within the interval fetches nothing.
    expect(await code(auth.verify(await token(k1), [remote]))).toBe('unknown_kid');
    expect(server.jwksRequests).toBe(2);
  });

  it('follows a rotation of an issuer that publishes no kids, with one refresh per interval', async () => {
    const bare = (k: TestKey) => ({ keys: [{ ...k.publicJwk, kid: undefined }] });
    server.state.body = bare(k1);
    await auth.verify(await token(k1, {}, { kid: null }), [remote]);
    clock.advance(31);
    server.state.body = bare(k2);
    await expect(auth.verify(await token(k2, {}, { kid: null }), [remote])).resolves.toMatchObject({
      kid: undefined,
    });
    expect(server.jwksRequests).toBe(2);
    // A forged signature without kid tries the refresh path too, but the interval holds it back.
    expect(await code(auth.verify(await token(k1, {}, { kid: null }), [remote]))).toBe('bad_signature');
    expect(server.jwksRequests).toBe(2);
  });

  it('picks up a pre-published key when the set expires, before the issuer signs with it', async () => {
    server.state.cacheControl = 'max-age=300';
    await auth.verify(await token(k1), [remote]);
    clock.advance(100);
    server.state.body = jwksOf(k1, k2);
    clock.advance(201);
    await auth.verify(await token(k1), [remote]);
    await vi.waitFor(() => expect(events).toHaveLength(2));
    server.state.body = jwksOf(k2);
    await expect(auth.verify(await token(k2), [remote])).resolves.toMatchObject({ kid: 'k2' });
    expect(events.map((e) => e.trigger)).toEqual(['initial', 'expired']);
    expect(server.jwksRequests).toBe(2);
  });

  it('keeps verifying with the cached keys while the issuer is down', async () => {
    const t = await token(k1);
    await auth.verify(t, [remote]);
    await server.close();
    clock.advance(301);
    await expect(auth.verify(t, [remote])).resolves.toBeDefined();
    await vi.waitFor(() => expect(events).toHaveLength(2));
    expect(events[1]).toMatchObject({
      trigger: 'expired',
      outcome: 'failure',
      error: expect.stringContaining('failed'),
    });
    await expect(auth.verify(t, [remote])).resolves.toBeDefined();
    expect(cache.status().state).toBe('WARN');
    expect(cache.snapshot()[0]).toMatchObject({
      keyCount: 1,
      ageSeconds: 301,
      lastError: expect.any(String),
    });
    // A token for an unknown kid is still refused precisely, not with a crash or an outage error.
    clock.advance(31);
    expect(await code(auth.verify(await token(k2), [remote]))).toBe('unknown_kid');
  });

  it('reports jwks_unavailable when there are no keys, and backs off before retrying', async () => {
    await server.close();
    const t = await token(k1);
    const error = await auth.verify(t, [remote]).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'jwks_unavailable', issuer: ISS, httpStatus: 401 });
    expect((error as Error).message).toContain(
      `the keys of issuer "${ISS}" are unavailable: GET ${server.jwksUri} failed`,
    );
    expect(await code(auth.verify(t, [remote]))).toBe('jwks_unavailable');
    expect(events).toHaveLength(1);
    expect(cache.status()).toEqual({
      state: 'ERROR',
      message: expect.stringMatching(/^issuer "https:\/\/issuer.example" \(no keys\): GET .* failed/),
    });
    clock.advance(1);
    expect(await code(auth.verify(t, [remote]))).toBe('jwks_unavailable');
    expect(events.map((e) => `${e.trigger}:${e.outcome}`)).toEqual(['initial:failure', 'retry:failure']);
  });

  it('lets a storm of forged kids cause at most one fetch per interval', async () => {
    const good = await token(k1);
    await auth.verify(good, [remote]);
    const storm = () =>
      Promise.all([
        ...Array.from({ length: 500 }, async () =>
          code(auth.verify(await token(k1, {}, { kid: randomUUID() }), [remote])),
        ),
        code(auth.verify(good, [remote])),
      ]);

    clock.advance(31);
    const first = await storm();
    expect(first.filter((c) => c === 'unknown_kid')).toHaveLength(500);
    expect(first.at(-1)).toBe('ok');
    expect(server.jwksRequests).toBe(2);

    clock.advance(29);
    await storm();
    expect(server.jwksRequests).toBe(2);

    clock.advance(2);
    await storm();
    expect(server.jwksRequests).toBe(3);
  });

  it.each<[string, (s: JwksServer) => void, string]>([
    ['an HTTP error', (s) => (s.state.status = 503), 'answered HTTP 503'],
    ['a body that is not JSON', (s) => (s.state.body = '<html>'), 'other than JSON'],
    ['a JSON body without keys', (s) => (s.state.body = { issuer: 'x' }), 'not a JWKS document'],
    [
      'a set with no usable key',
      (s) => (s.state.body = { keys: [{ kty: 'oct', k: 'AA' }] }),
      'no usable verification key',
    ],
    [
      'a body above the limit',
      (s) => (s.state.body = { keys: [], pad: 'x'.repeat(300 * 1024) }),
      'the limit is 262144',
    ],
    [
      'a chunked body above the limit',
      (s) => {
        s.state.body = { keys: [], pad: 'x'.repeat(300 * 1024) };
        s.state.chunked = true;
      },
      'more than 262144 bytes',
    ],
  ])('treats %s as a failed fetch', async (_, breakServer, message) => {
    breakServer(server);
    const error = await auth.verify(await token(k1), [remote]).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'jwks_unavailable', message: expect.stringContaining(message) });
    expect(events).toMatchObject([{ outcome: 'failure', error: expect.stringContaining(message) }]);
  });

  it("gives up on a slow issuer after the rule's timeout", async () => {
    server.state.hang = true;
    const slow = rule({ issuer: ISS, jwksUri: server.jwksUri, timeout: '100ms' });
    const error = await auth.verify(await token(k1), [slow]).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'jwks_unavailable', message: expect.stringContaining('timeout') });
  });

  it('aborts fetches in flight when stopped, and refuses new ones', async () => {
    server.state.hang = true;
    const pending = code(auth.verify(await token(k1), [remote]));
    await vi.waitFor(() => expect(server.jwksRequests).toBe(1));
    await cache.stop();
    expect(await pending).toBe('jwks_unavailable');
    clock.advance(5);
    const error = await auth.verify(await token(k1), [remote]).catch((e: unknown) => e);
    expect((error as Error).message).toContain('stopped');
  });

  it('finds the keys through OpenID discovery when the rule names no JWKS', async () => {
    const discovered = rule({ issuer: server.url });
    await expect(auth.verify(await token(k1, { iss: server.url }), [discovered])).resolves.toBeDefined();
    expect(server.hits.get('/.well-known/openid-configuration')).toBe(1);
    expect(server.jwksRequests).toBe(1);
    expect(cache.snapshot()[0]?.uri).toBe(`${server.url}/.well-known/openid-configuration`);
  });

  it('keys sets by issuer and URI', async () => {
    const other = 'https://other.example';
    const sameSource = rule({ issuer: ISS, jwksUri: server.jwksUri, audiences: ['x'] });
    const otherIssuer = rule({ issuer: other, jwksUri: server.jwksUri });
    await auth.verify(await token(k1), [remote]);
    await auth.verify(await token(k1, { aud: 'x' }), [sameSource]);
    expect(server.jwksRequests).toBe(1);
    await auth.verify(await token(k1, { iss: other }), [otherIssuer]);
    expect(server.jwksRequests).toBe(2);
    expect(cache.snapshot().map((e) => e.issuer)).toEqual([ISS, other]);
  });

  it('reports key age from its clock', async () => {
    await auth.verify(await token(k1), [remote]);
    clock.advance(120);
    expect(cache.snapshot()).toEqual([
      {
        issuer: ISS,
        uri: server.jwksUri,
        keyCount: 1,
        fetchedAt: clock.ms - 120_000,
        ageSeconds: 120,
        expiresAt: clock.ms - 120_000 + 300_000,
        lastError: undefined,
      },
    ]);
    expect(cache.status().state).toBe('OK');
  });

  it('serves inline key sets without any fetch', async () => {
    const inline = rule({ issuer: ISS, jwks: JSON.stringify(jwksOf(k1)) });
    await auth.verify(await token(k1), [inline]);
    clock.advance(86_400 * 2);
    await auth.verify(await token(k1), [inline]);
    expect(await code(auth.verify(await token(k2), [inline]))).toBe('unknown_kid');
    expect(server.jwksRequests).toBe(0);
    expect(cache.snapshot()[0]).toMatchObject({ uri: 'inline', keyCount: 1, expiresAt: undefined });
  });

  it('rejects inconsistent options', () => {
    expect(() => new JwksCache({ minRefreshMs: 10, maxRefreshMs: 5 })).toThrow(/minRefreshMs/);
    expect(() => new JwksCache({ maxKeys: Number.NaN })).toThrow(/maxKeys/);
  });
});

describe('maxAge', () => {
  it.each<[string | null, number | undefined]>([
    [null, undefined],
    ['max-age=60', 60],
    ['public, max-age=60, must-revalidate', 60],
    ['MAX-AGE = "90"', 90],
    ['max-age=-5', undefined],
    ['max-age=abc', undefined],
    ['private, no-cache', 0],
    ['no-store, max-age=600', 0],
  ])('%j → %j', (header, expected) => {
    expect(maxAge(header)).toBe(expected);
  });
});
