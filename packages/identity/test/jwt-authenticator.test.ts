// Verification: each refusal code, hostile input that must never crash, algorithm policy and the identity produced.
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthenticationError, type AuthenticationErrorCode } from '../src/errors.ts';
import { JwksCache } from '../src/jwks-cache.ts';
import { JwtAuthenticator, type JwtAuthenticatorHooks } from '../src/jwt-authenticator.ts';
import type { JwtRule } from '../src/request-authentication.ts';
import { RuleScope } from '../src/token-extraction.ts';
import {
  b64url,
  craft,
  jwksOf,
  makeKey,
  rule,
  rules,
  sign,
  TestClock,
  type TestKey,
} from './support/tokens.ts';

const ISS = 'https://issuer.example';
const clock = new TestClock();
let key: TestKey;
let rsa: TestKey;
let stranger: TestKey;
let main: JwtRule;
let jwks: JwksCache;
let rejected: AuthenticationErrorCode[];
let verified: string[];
let authenticator: JwtAuthenticator;

beforeAll(async () => {
  [key, rsa, stranger] = await Promise.all([
    makeKey('ES256', 'k-es'),
    makeKey('RS256', 'k-rs'),
    makeKey('ES256', 'k-es'),
  ]);
  main = rule({ issuer: ISS, audiences: ['api', 'web'], jwks: JSON.stringify(jwksOf(key, rsa)) });
  jwks = new JwksCache({ now: clock.now });
  rejected = [];
  verified = [];
  const hooks: JwtAuthenticatorHooks = {
    onRejected: ({ code }) => rejected.push(code),
    onVerified: ({ issuer }) => verified.push(issuer),
  };
  authenticator = new JwtAuthenticator({ jwks, now: clock.now, hooks });
});

afterAll(() => jwks.stop());

const claims = (extra: Record<string, unknown> = {}) => ({
  iss: ISS,
  sub: 'alice',
  aud: 'api',
  iat: clock.seconds - 10,
  exp: clock.seconds + 600,
  ...extra,
});

async function refusal(token: string, rulesToUse: readonly JwtRule[] = [main]): Promise<AuthenticationError> {
  try {
    await authenticator.verify(token, rulesToUse);
  } catch (error) {
    if (error instanceof AuthenticationError) return error;
    throw error;
  }
  throw new Error('expected the token to be refused');
}

describe('JwtAuthenticator.verify', () => {
  it('verifies a good token and exposes request.auth.* attributes', async () => {
    const token = await sign(key, claims({ aud: ['web', 'other'], azp: 'cli', groups: ['g1'] }));
    const identity = await authenticator.verify(token, [main]);
    expect(identity).toMatchObject({
      principal: `${ISS}/alice`,
      issuer: ISS,
      subject: 'alice',
      audiences: ['web', 'other'],
      presenter: 'cli',
      rawToken: token,
      rule: main,
      algorithm: 'ES256',
      kid: 'k-es',
    });
    expect(identity.claims['groups']).toEqual(['g1']);
    expect(verified).toContain(ISS);
  });

  it.each([
    ['RS256', () => sign(rsa, claims())],
    ['a token without kid (every key of the alg is tried)', () => sign(key, claims(), { kid: null })],
    ['exp within the clock skew', () => sign(key, claims({ exp: clock.seconds - 30 }))],
    ['nbf within the clock skew', () => sign(key, claims({ nbf: clock.seconds + 30 }))],
    ['no exp at all (Envoy does not require one)', () => sign(key, claims({ exp: undefined }))],
  ])('accepts %s', async (_, make) => {
    await expect(authenticator.verify(await make(), [main])).resolves.toMatchObject({ issuer: ISS });
  });

  it('gives no principal to a token without sub', async () => {
    const identity = await authenticator.verify(await sign(key, claims({ sub: undefined })), [main]);
    expect(identity.principal).toBeUndefined();
    expect(identity.audiences).toEqual(['api']);
  });

  it.each<[string, () => Promise<string> | string, AuthenticationErrorCode, string]>([
    ['a word', () => 'hello', 'malformed', '3 dot-separated parts, this has 1'],
    ['three dots', () => '...', 'malformed', 'this has 4'],
    ['two empty dots', () => '..', 'malformed', 'not base64url-encoded JSON'],
    ['a JWE', () => 'a.b.c.d.e', 'malformed', 'JWE'],
    ['non-base64url characters', () => 'a+b.c/d.e=f', 'malformed', 'base64url'],
    ['a header that is not JSON', () => `${b64url('{')}.${b64url('{}')}.sig`, 'malformed', 'header is not'],
    ['a header that is a list', () => craft([], {}), 'malformed', 'header is not a JSON object'],
    ['a header without alg', () => craft({ kid: 'k' }, claims()), 'malformed', 'no alg'],
    ['a numeric kid', () => craft({ alg: 'ES256', kid: 7 }, claims()), 'malformed', 'invalid kid'],
    [
      'an empty signature',
      () => craft({ alg: 'ES256', kid: 'k-es' }, claims(), ''),
      'malformed',
      'no signature',
    ],
    [
      'a payload that is not JSON',
      () => `${b64url({ alg: 'ES256' })}.${b64url('nope')}.sig`,
      'malformed',
      'payload',
    ],
    [
      'a payload that is a string',
      () => craft({ alg: 'ES256' }, '"x"'),
      'malformed',
      'payload is not a JSON object',
    ],
    ['a numeric iss', () => craft({ alg: 'ES256' }, { iss: 1 }), 'malformed', 'iss claim is not a string'],
    ['a string exp', async () => sign(key, claims({ exp: 'tomorrow' })), 'malformed', 'exp'],
    [
      'a tampered signature',
      async () => `${(await sign(key, claims())).slice(0, -6)}AAAAAA`,
      'bad_signature',
      'signature',
    ],
    [
      'a tampered payload',
      async () => {
        const [h, , s] = (await sign(key, claims())).split('.');
        return `${h}.${b64url(claims({ sub: 'admin' }))}.${s}`;
      },
      'bad_signature',
      'signature',
    ],
    [
      'a key with the same kid from someone else',
      () => sign(stranger, claims()),
      'bad_signature',
      'signature',
    ],
    [
      'exp beyond the skew',
      () => sign(key, claims({ exp: clock.seconds - 61 })),
      'expired',
      'expired at 2029-12-31T23:58:59',
    ],
    [
      'nbf beyond the skew',
      () => sign(key, claims({ nbf: clock.seconds + 120 })),
      'not_yet_valid',
      'not valid before',
    ],
    [
      'iat beyond the skew',
      () => sign(key, claims({ iat: clock.seconds + 120 })),
      'not_yet_valid',
      'issued in the future',
    ],
    ['an audience not listed', () => sign(key, claims({ aud: 'other' })), 'wrong_audience', '"api", "web"'],
    [
      'no audience when audiences are listed',
      () => sign(key, claims({ aud: undefined })),
      'wrong_audience',
      'audiences',
    ],
    [
      'another issuer',
      () => sign(key, claims({ iss: 'https://evil.example' })),
      'unknown_issuer',
      'evil.example',
    ],
    ['no iss', () => sign(key, claims({ iss: undefined })), 'unknown_issuer', 'no iss claim'],
    ['an unknown kid', () => sign(key, claims(), { kid: 'nope' }), 'unknown_kid', 'kid "nope"'],
    [
      'a kid with path tricks',
      () => sign(key, claims(), { kid: '../../../../etc/passwd' }),
      'unknown_kid',
      'passwd',
    ],
    ['a kid named __proto__', () => sign(key, claims(), { kid: '__proto__' }), 'unknown_kid', '__proto__'],
    [
      'a kid named constructor',
      () => sign(key, claims(), { kid: 'constructor' }),
      'unknown_kid',
      'constructor',
    ],
    [
      'alg none',
      () => craft({ alg: 'none', typ: 'JWT' }, claims(), ''),
      'disallowed_algorithm',
      '"none" is never accepted',
    ],
    [
      'HS256 signed with the public key (key confusion)',
      () => {
        const input = `${b64url({ alg: 'HS256', kid: 'k-rs' })}.${b64url(claims())}`;
        const mac = createHmac('sha256', JSON.stringify(rsa.publicJwk)).update(input).digest('base64url');
        return `${input}.${mac}`;
      },
      'disallowed_algorithm',
      '"HS256" is never accepted',
    ],
    ['an unknown alg', () => craft({ alg: 'ES256K' }, claims()), 'disallowed_algorithm', 'ES256K'],
    ['a token above the size limit', () => `${'a'.repeat(9000)}.b.c`, 'token_too_large', 'limit is 8192'],
  ])('refuses %s', async (_, make, code, message) => {
    const before = rejected.length;
    const error = await refusal(await make());
    expect(error.code).toBe(code);
    expect(error.message).toContain(message);
    expect(error.httpStatus).toBe(code === 'wrong_audience' ? 403 : 401);
    expect(rejected.slice(before)).toEqual([code]);
  });

  it("applies the rule's algorithm allow-list", async () => {
    const rsOnly = rule({
      issuer: ISS,
      jwks: JSON.stringify(jwksOf(key, rsa)),
      'x-portcullis-algorithms': ['RS256'],
    });
    await expect(authenticator.verify(await sign(rsa, claims()), [rsOnly])).resolves.toBeDefined();
    const error = await refusal(await sign(key, claims()), [rsOnly]);
    expect(error.code).toBe('disallowed_algorithm');
    expect(error.message).toBe(`alg ES256 is not allowed for issuer "${ISS}"`);
  });

  it('tries every rule naming the issuer, and reports the first refusal when none accepts', async () => {
    const [forApi, forWeb] = rules([
      { issuer: ISS, audiences: ['api'], jwks: JSON.stringify(jwksOf(key)) },
      { issuer: ISS, audiences: ['web'], jwks: JSON.stringify(jwksOf(key)) },
    ]);
    const web = await authenticator.verify(await sign(key, claims({ aud: 'web' })), [forApi!, forWeb!]);
    expect(web.rule).toBe(forWeb);
    const error = await refusal(await sign(key, claims({ aud: 'mobile' })), [forApi!, forWeb!]);
    expect(error.code).toBe('wrong_audience');
    expect(error.message).toContain('"api"');
  });

  it('ignores unusable keys in a set (symmetric, private, encryption, short RSA)', async () => {
    const short = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    const set = {
      keys: [
        { kty: 'oct', k: 'c2VjcmV0', kid: 'k-es' },
        { ...key.publicJwk, kid: 'priv', d: 'AAAA' },
        { ...key.publicJwk, kid: 'enc', use: 'enc' },
        { ...short, kid: 'short', alg: 'RS256' },
        key.publicJwk,
      ],
    };
    const r = rule({ issuer: ISS, jwks: JSON.stringify(set) });
    await expect(authenticator.verify(await sign(key, claims()), [r])).resolves.toBeDefined();
    for (const kid of ['priv', 'enc', 'short']) {
      expect((await refusal(await sign(key, claims(), { kid }), [r])).code).toBe('unknown_kid');
    }
    const keys = jwks.peek(r);
    expect(keys?.size).toBe(1);
    expect(keys?.skipped).toEqual([
      'key 0: symmetric keys are never used',
      'key 1: private key material',
      'key 2: use is "enc", not "sig"',
      'key 3: RSA keys shorter than 2048 bits are refused',
    ]);
  });

  it('never throws anything but an AuthenticationError on hostile input', async () => {
    const good = await sign(key, claims());
    const [h, p, s] = good.split('.') as [string, string, string];
    const inputs: string[] = [
      '',
      '.',
      '\u0000.\u0000.\u0000',
      '🙂.🙂.🙂',
      `${'A'.repeat(8000)}.${'A'.repeat(100)}.A`,
      `${h}.${p}.${'A'.repeat(6000)}`,
      `${h}.${p}`,
      `${h}..${s}`,
      `.${p}.${s}`,
      craft({ alg: 'ES256', kid: 'k-es', crit: ['exp'] }, claims()),
      craft({ alg: 'ES256', kid: 'k-es', b64: false, crit: ['b64'] }, claims()),
      craft({ alg: 'ES256', kid: 'x'.repeat(5000) }, claims()),
      craft({ alg: 'ES256', toString: 'x' }, { iss: { toString: 1 } }),
      craft({ alg: ['ES256'] }, claims()),
      craft({ alg: 'RS256', kid: 'k-rs' }, claims(), 'AAAA'),
      `${b64url({ alg: 'ES256', kid: 'k-es' })}.${Buffer.from([0xff, 0xfe, 0x00]).toString('base64url')}.${s}`,
    ];
    for (let i = 0; i < 300; i++) {
      const bytes = randomBytes(1 + (i % 64));
      inputs.push(
        i % 3 === 0
          ? bytes.toString('latin1')
          : i % 3 === 1
            ? bytes.toString('base64url')
            : `${bytes.toString('base64url')}.${bytes.toString('base64url')}.${bytes.toString('base64url')}`,
      );
    }
    for (const input of inputs) {
      const outcome = await authenticator.verify(input, [main]).then(
        () => 'accepted',
        (error: unknown) => (error instanceof AuthenticationError ? error.code : `crash: ${String(error)}`),
      );
      expect(outcome, JSON.stringify(input.slice(0, 60))).not.toMatch(/^(crash|accepted)/);
    }
  });
});

describe('JwtAuthenticator.authenticate', () => {
  const scope = () => new RuleScope([main]);

  it('is anonymous without a token', async () => {
    await expect(authenticator.authenticate({ headers: { accept: '*/*' } }, scope())).resolves.toEqual({
      anonymous: true,
      outputHeaders: [],
    });
  });

  it('verifies the one token and reports where it was found', async () => {
    const token = await sign(key, claims());
    const outcome = await authenticator.authenticate(
      { headers: { authorization: `Bearer ${token}` }, query: `access_token=${token}` },
      scope(),
    );
    expect(outcome).toMatchObject({
      anonymous: false,
      principal: `${ISS}/alice`,
      locations: [
        { kind: 'header', name: 'authorization', prefix: 'Bearer ' },
        { kind: 'param', name: 'access_token' },
      ],
    });
  });

  it('refuses several different tokens, even when each is valid', async () => {
    const [one, two] = await Promise.all([sign(key, claims()), sign(key, claims({ sub: 'bob' }))]);
    const before = rejected.length;
    const attempt = authenticator.authenticate(
      { headers: { authorization: `Bearer ${one}` }, query: { access_token: two } },
      scope(),
    );
    await expect(attempt).rejects.toMatchObject({
      code: 'duplicate_tokens',
      message: 'the request carries 2 different tokens (header authorization; query parameter access_token)',
    });
    expect(rejected.slice(before)).toEqual(['duplicate_tokens']);
  });

  it('refuses an invalid token rather than treating the request as anonymous', async () => {
    await expect(
      authenticator.authenticate({ headers: { authorization: 'Bearer not-a-jwt' } }, scope()),
    ).rejects.toMatchObject({ code: 'malformed' });
  });

  it("refuses a token whose issuer has a rule, but not for the token's location", async () => {
    const other = rule({
      issuer: 'https://other.example',
      fromHeaders: [{ name: 'x-other' }],
      jwks: JSON.stringify(jwksOf(key)),
    });
    const token = await sign(key, claims({ iss: 'https://other.example' }));
    await expect(
      authenticator.authenticate(
        { headers: { authorization: `Bearer ${token}` } },
        new RuleScope([main, other]),
      ),
    ).rejects.toMatchObject({ code: 'unknown_issuer' });
    await expect(
      authenticator.authenticate({ headers: { 'x-other': token } }, new RuleScope([main, other])),
    ).resolves.toMatchObject({ issuer: 'https://other.example' });
  });

  it('rejects bad options', () => {
    expect(() => new JwtAuthenticator({ jwks, clockSkewSeconds: -1 })).toThrow(RangeError);
    expect(() => new JwtAuthenticator({ jwks, maxTokenBytes: 0 })).toThrow(RangeError);
  });
});
