// The policy set end to end: YAML resources, namespace and root-namespace scoping, selectors, a real JWKS server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upstreamHeaderMutations } from '../src/header-outputs.ts';
import { JwksCache } from '../src/jwks-cache.ts';
import { JwtAuthenticator } from '../src/jwt-authenticator.ts';
import { type AuthenticationRequest, PolicySet } from '../src/policy-set.ts';
import { parseRequestAuthentication } from '../src/request-authentication.ts';
import { JwksServer } from './support/jwks-server.ts';
import { jwksOf, makeKey, sign, type TestKey } from './support/tokens.ts';

const MESH = 'https://mesh.example';
const SHOP = 'https://shop.example';
const PAY = 'https://pay.example';
let key: TestKey;
let server: JwksServer;
let cache: JwksCache;
let policies: PolicySet;

const resource = (name: string, namespace: string, body: string) =>
  parseRequestAuthentication(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: ${name}
  namespace: ${namespace}
spec:
${body}`);

beforeAll(async () => {
  key = await makeKey('ES256', 'k');
  server = await JwksServer.start(jwksOf(key));
  cache = new JwksCache();
  policies = new PolicySet({ authenticator: new JwtAuthenticator({ jwks: cache }) });
  policies.put(
    resource('mesh', 'istio-system', `  jwtRules:\n  - issuer: ${MESH}\n    jwksUri: ${server.jwksUri}\n`),
  );
  policies.put(
    resource(
      'shop',
      'shop',
      `  jwtRules:
  - issuer: ${SHOP}
    jwksUri: ${server.jwksUri}
    audiences: [shop]
    outputClaimToHeaders: [{header: x-user, claim: sub}]`,
    ),
  );
  policies.put(
    resource(
      'payments',
      'shop',
      `  selector:
    matchLabels: {app: payments}
  jwtRules:
  - issuer: ${PAY}
    jwksUri: ${server.jwksUri}
    fromHeaders: [{name: x-pay-token}]`,
    ),
  );
});

afterAll(async () => {
  await cache.stop();
  await server.close();
});

function token(iss: string, extra: Record<string, unknown> = {}): Promise<string> {
  return sign(key, { iss, sub: 'alice', aud: 'shop', exp: Math.floor(Date.now() / 1000) + 600, ...extra });
}

async function outcome(request: AuthenticationRequest): Promise<string> {
  return policies.authenticate(request).then(
    (o) => (o.anonymous ? 'anonymous' : `ok:${o.principal}`),
    (e: { code?: string }) => e.code ?? `crash:${String(e)}`,
  );
}

describe('PolicySet', () => {
  it('stores resources by namespace and name', () => {
    expect(policies.list().map((r) => `${r.metadata.namespace}/${r.metadata.name}`)).toEqual([
      'istio-system/mesh',
      'shop/payments',
      'shop/shop',
    ]);
    expect(policies.list('shop')).toHaveLength(2);
    expect(policies.get('shop', 'shop')?.jwtRules[0]?.issuer).toBe(SHOP);
    expect(policies.get('shop', 'nope')).toBeUndefined();
    expect(policies.delete('shop', 'nope')).toBe(false);
  });

  it.each<[string, string, (t: Record<string, string>) => AuthenticationRequest, string]>([
    ['no token', MESH, () => ({ namespace: 'shop', headers: {} }), 'anonymous'],
    [
      'a root-namespace issuer in any namespace',
      MESH,
      (t) => ({ namespace: 'other', headers: t }),
      `ok:${MESH}/alice`,
    ],
    [
      'a namespace issuer in its namespace',
      SHOP,
      (t) => ({ namespace: 'shop', headers: t }),
      `ok:${SHOP}/alice`,
    ],
    ['a namespace issuer elsewhere', SHOP, (t) => ({ namespace: 'other', headers: t }), 'unknown_issuer'],
    [
      'the audience check of the namespace rule',
      SHOP,
      (t) => ({ namespace: 'shop', headers: t, labels: {} }),
      `ok:${SHOP}/alice`,
    ],
    [
      'a selector-bound issuer for a matching workload',
      PAY,
      (t) => ({
        namespace: 'shop',
        headers: { 'x-pay-token': t.authorization!.slice(7) },
        labels: { app: 'payments', v: '1' },
      }),
      `ok:${PAY}/alice`,
    ],
    [
      'a selector-bound issuer for another workload',
      PAY,
      (t) => ({
        namespace: 'shop',
        headers: { 'x-pay-token': t.authorization!.slice(7) },
        labels: { app: 'cart' },
      }),
      'anonymous',
    ],
    [
      'a selector-bound issuer when labels are not given',
      PAY,
      (t) => ({ namespace: 'shop', headers: { 'x-pay-token': t.authorization!.slice(7) } }),
      'anonymous',
    ],
    [
      'a selector-bound issuer at the default location',
      PAY,
      (t) => ({ namespace: 'shop', headers: t, labels: { app: 'payments' } }),
      'unknown_issuer',
    ],
  ])('authenticates %s', async (_, iss, request, expected) => {
    const t = await token(iss);
    expect(await outcome(request({ authorization: `Bearer ${t}` }))).toBe(expected);
  });

  it('computes header mutations from the outcome', async () => {
    const t = await token(SHOP);
    const result = await policies.authenticate({
      namespace: 'shop',
      headers: { authorization: `Bearer ${t}`, 'x-user': 'forged' },
    });
    expect(upstreamHeaderMutations(result)).toEqual({
      set: [['x-user', 'alice']],
      remove: ['authorization'],
      removeQueryParams: [],
    });
  });

  it('applies put and delete to later requests', async () => {
    const local = new PolicySet({
      authenticator: new JwtAuthenticator({ jwks: cache }),
      rootNamespace: 'mesh-root',
    });
    const t = await token(SHOP);
    const request = { namespace: 'shop', headers: { authorization: `Bearer ${t}` } };
    // No rules: nothing reads the token, as in Istio without a RequestAuthentication.
    await expect(local.authenticate(request)).resolves.toEqual({ anonymous: true, outputHeaders: [] });
    local.put(
      resource('shop', 'mesh-root', `  jwtRules:\n  - issuer: ${SHOP}\n    jwksUri: ${server.jwksUri}\n`),
    );
    await expect(local.authenticate(request)).resolves.toMatchObject({ principal: `${SHOP}/alice` });
    local.put(
      resource('shop', 'mesh-root', `  jwtRules:\n  - issuer: ${MESH}\n    jwksUri: ${server.jwksUri}\n`),
    );
    await expect(local.authenticate(request)).rejects.toMatchObject({ code: 'unknown_issuer' });
    expect(local.delete('mesh-root', 'shop')).toBe(true);
    expect(local.list()).toEqual([]);
    await expect(local.authenticate({ namespace: 'shop', headers: {} })).resolves.toEqual({
      anonymous: true,
      outputHeaders: [],
    });
  });

  it('forgets the keys of issuers no resource names any more', async () => {
    const fresh = new JwksCache();
    const local = new PolicySet({ authenticator: new JwtAuthenticator({ jwks: fresh }) });
    local.put(resource('good', 'ns', `  jwtRules:\n  - issuer: ${SHOP}\n    jwksUri: ${server.jwksUri}\n`));
    local.put(
      resource('dead', 'ns', `  jwtRules:\n  - issuer: ${PAY}\n    jwksUri: http://127.0.0.1:1/jwks\n`),
    );
    await local.prefetchKeys();
    expect(fresh.status().state).toBe('ERROR');
    local.delete('ns', 'dead');
    expect(fresh.snapshot().map((e) => e.issuer)).toEqual([SHOP]);
    expect(fresh.status().state).toBe('OK');
    await fresh.stop();
  });

  it("prefetches every rule's keys", async () => {
    const fresh = new JwksCache();
    const local = new PolicySet({ authenticator: new JwtAuthenticator({ jwks: fresh }) });
    for (const r of policies.list()) local.put(r);
    await local.prefetchKeys();
    expect(
      fresh
        .snapshot()
        .map((e) => e.issuer)
        .sort(),
    ).toEqual([MESH, PAY, SHOP]);
    expect(fresh.status().state).toBe('OK');
    await fresh.stop();
  });
});
