// Enrichment of decision inputs: identity from a local policy set, subject and resource ids from claims, paths and headers.
import {
  AuthenticationError,
  JwksCache,
  JwtAuthenticator,
  PolicySet,
  parseRequestAuthentication,
} from '@portcullis/identity';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AttributeCache } from '../src/attribute-cache.ts';
import { Enricher, type EnrichmentConfig } from '../src/enrichment.ts';
import { MemorySource } from './memory-source.ts';

const ISS = 'https://enrich.example';
let policies: PolicySet;
let jwks: JwksCache;
let token: (claims: Record<string, unknown>) => Promise<string>;

beforeAll(async () => {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k', alg: 'ES256', use: 'sig' };
  token = (claims) =>
    new SignJWT({ iss: ISS, exp: Math.floor(Date.now() / 1000) + 600, ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: 'k' })
      .sign(privateKey);
  jwks = new JwksCache();
  policies = new PolicySet({ authenticator: new JwtAuthenticator({ jwks }) });
  policies.put(
    parseRequestAuthentication({
      apiVersion: 'security.istio.io/v1',
      kind: 'RequestAuthentication',
      metadata: { name: 'jwt', namespace: 'shop' },
      spec: { jwtRules: [{ issuer: ISS, jwks: JSON.stringify({ keys: [jwk] }) }] },
    }),
  );
});
afterAll(() => jwks.stop());

function envoyInput(path: string, headers: Record<string, string> = {}) {
  return {
    attributes: { request: { http: { method: 'GET', path, headers } } },
    // Decoded segments of the path without its query, as the OPA Envoy plugin builds parsed_path.
    parsed_path: path
      .split('?')[0]!
      .split('/')
      .filter((segment) => segment !== '')
      .map(decodeURIComponent),
  };
}

function setup(config: Partial<EnrichmentConfig> = {}) {
  const source = new MemorySource();
  source.set('user', 'alice', { department: 'eng' });
  source.set('user', 'org-7', { plan: 'gold' });
  source.set('document', 'd1', { owner: 'alice' });
  source.set('tenant', 't9', { region: 'eu' });
  const cache = new AttributeCache({ source });
  const enricher = new Enricher({
    config: {
      namespace: 'shop',
      subject: { kind: 'user', id: { claim: 'sub' } },
      resource: { kind: 'document', id: { path: '/v1/documents/{doc}/**', param: 'doc' } },
      ...config,
    },
    attributes: cache,
    identity: policies,
  });
  return { source, cache, enricher };
}

describe('Enricher', () => {
  it('adds identity, subject and resource; a second request is served from the cache', async () => {
    const { source, enricher } = setup();
    const input = envoyInput('/v1/documents/d1/comments?x=1', {
      authorization: `Bearer ${await token({ sub: 'alice', aud: 'api' })}`,
    });
    const out = await enricher.enrich(input);
    expect(out.attributes).toBe(input.attributes);
    expect(out.identity).toMatchObject({
      principal: `${ISS}/alice`,
      audiences: ['api'],
      claims: { sub: 'alice' },
    });
    expect(out.subject).toEqual({
      kind: 'user',
      id: 'alice',
      found: true,
      attributes: { department: 'eng' },
      version: 1,
    });
    expect(out.resource).toEqual({
      kind: 'document',
      id: 'd1',
      found: true,
      attributes: { owner: 'alice' },
      version: 1,
    });
    expect(source.calls).toHaveLength(1);
    expect(source.calls[0]).toHaveLength(2);
    await enricher.enrich(input);
    expect(source.calls).toHaveLength(1);
    expect(input).not.toHaveProperty('identity');
  });

  it.each<[string, EnrichmentConfig['subject'], string, Record<string, string>, string | undefined]>([
    ['a nested claim', { kind: 'user', id: { claim: 'org.key' } }, '/', {}, 'org-7'],
    ['the principal', { kind: 'user', id: { principal: true } }, '/', {}, `${ISS}/alice`],
    ['a header', { kind: 'tenant', id: { header: 'X-Tenant' } }, '/', { 'x-tenant': 't9' }, 't9'],
    [
      'a path parameter (URL-decoded)',
      { kind: 'user', id: { path: '/users/{u}', param: 'u' } },
      '/users/org%2D7',
      {},
      'org-7',
    ],
    [
      'the first selector that yields',
      { kind: 'user', id: [{ claim: 'nope' }, { claim: 'sub' }] },
      '/',
      {},
      'alice',
    ],
    [
      'a path that does not match',
      { kind: 'user', id: { path: '/users/{u}', param: 'u' } },
      '/users/a/b',
      {},
      undefined,
    ],
  ])('resolves the subject id from %s', async (_what, subject, path, headers, id) => {
    const { enricher } = setup({ subject, resource: undefined });
    const auth = { authorization: `Bearer ${await token({ sub: 'alice', org: { key: 'org-7' } })}` };
    const out = await enricher.enrich(envoyInput(path, { ...auth, ...headers }));
    if (id === undefined) expect(out).not.toHaveProperty('subject');
    else expect(out.subject?.id).toBe(id);
  });

  it('marks an id without a record as not found', async () => {
    const { enricher } = setup();
    const out = await enricher.enrich(
      envoyInput('/v1/documents/nope', { authorization: `Bearer ${await token({ sub: 'zed' })}` }),
    );
    expect(out.subject).toEqual({ kind: 'user', id: 'zed', found: false, attributes: {}, version: 0 });
    expect(out.resource).toMatchObject({ id: 'nope', found: false });
  });

  it('is anonymous without a token, and then has no claim-based subject', async () => {
    const { enricher } = setup();
    const out = await enricher.enrich(envoyInput('/v1/documents/d1'));
    expect(out.identity).toEqual({ anonymous: true });
    expect(out).not.toHaveProperty('subject');
    expect(out.resource?.found).toBe(true);
  });

  it.each([
    ['reject', undefined],
    ['annotate', { error: { code: 'expired' } }],
  ] as const)('with onInvalidToken %s, handles a refused token', async (mode, expected) => {
    const { enricher } = setup({ onInvalidToken: mode });
    const input = envoyInput('/', { authorization: `Bearer ${await token({ sub: 'alice', exp: 1 })}` });
    if (expected === undefined) {
      await expect(enricher.enrich(input)).rejects.toBeInstanceOf(AuthenticationError);
    } else {
      expect((await enricher.enrich(input)).identity).toMatchObject(expected);
    }
  });

  it('uses an identity outcome the caller already has, and an explicit request', async () => {
    const { enricher } = setup();
    const out = await enricher.enrich(
      { custom: true },
      {
        request: { headers: {}, path: '/v1/documents/d1' },
        identity: {
          anonymous: false,
          principal: 'p',
          claims: { sub: 'alice' },
          audiences: [],
          presenter: undefined,
        },
      },
    );
    expect(out).toMatchObject({
      custom: true,
      identity: { principal: 'p' },
      subject: { id: 'alice' },
      resource: { id: 'd1' },
    });
  });

  it('refuses a configuration it cannot serve', () => {
    expect(
      () => new Enricher({ config: { namespace: 'x', subject: { kind: 'user', id: { claim: 'sub' } } } }),
    ).toThrow(TypeError);
    const cache = new AttributeCache({ source: new MemorySource() });
    expect(
      () =>
        new Enricher({
          config: { namespace: 'x', resource: { kind: 'd', id: { path: '/docs/{id}', param: 'doc' } } },
          attributes: cache,
        }),
    ).toThrow(/no \{doc\} segment/);
  });
});
