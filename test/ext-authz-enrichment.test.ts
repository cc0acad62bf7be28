// End to end: an ext-authz process enriching each check from a PIP (JWT identity, subject and resource attributes) before its policy decides.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AdapterProcess,
  httpCheck,
  type PapProcess,
  startAdapter,
  startPap,
  untilServing,
  view,
} from './ext-authz-fixture.ts';
import type { BundleSource } from './ext-authz-policies.ts';
import { es256Issuer, type Signer, startTestPip, type TestPip } from './pip-fixture.ts';

const ISS = 'https://idp.shop.example';

/** Allows only when the token's department claim, the caller's stored department and the product's agree. */
const POLICY: BundleSource = {
  entrypoints: ['shop/authz/allow'],
  modules: {
    'authz.rego': `package shop.authz

default allow := false

allow if {
	input.identity.claims.department == input.subject.attributes.department
	input.subject.attributes.department == input.resource.attributes.department
}
`,
  },
};

let pip: TestPip;
let pap: PapProcess;
let adapter: AdapterProcess;
let sign: Signer;
let forge: Signer;

beforeAll(async () => {
  const [testPip, idp, impostor, papProcess] = await Promise.all([
    startTestPip('ext-authz-enrichment'),
    es256Issuer(ISS, 'idp-1'),
    // Same kid, another key: a token with a bad signature.
    es256Issuer(ISS, 'idp-1'),
    startPap(),
  ]);
  pip = testPip;
  pap = papProcess;
  sign = idp.sign;
  forge = impostor.sign;
  await pip.put('/v1/request-authentications/shop/jwt', {
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    spec: { jwtRules: [{ issuer: ISS, jwks: JSON.stringify({ keys: [idp.jwk] }) }] },
  });
  await pip.put('/v1/attributes/user/alice', { attributes: { department: 'eng' } });
  await pip.put('/v1/attributes/user/bob', { attributes: { department: 'sales' } });
  await pip.put('/v1/attributes/product/widget', { attributes: { department: 'eng' } });

  const revision = await pap.publish('shop', POLICY);
  await pap.activate('shop', revision);
  adapter = await startAdapter(
    {
      EXT_AUTHZ_BUNDLES: 'shop',
      EXT_AUTHZ_DECISION_PATH: 'shop/authz/allow',
      EXT_AUTHZ_PIP_ADDR: `127.0.0.1:${pip.grpcPort}`,
      // Generous for a busy machine; the default (150ms) is sized for Envoy's deadline.
      EXT_AUTHZ_PIP_TIMEOUT: '10s',
      EXT_AUTHZ_ENRICH_NAMESPACE: 'shop',
      EXT_AUTHZ_ENRICH_SUBJECT: 'user:claim=sub',
      EXT_AUTHZ_ENRICH_RESOURCE: 'product:path=/api/v1/products/{id}:id',
    },
    { pap },
  );
  await untilServing(adapter, 'shop', revision);
}, 180_000);

afterAll(async () => {
  await adapter?.stop();
  await pap?.stop();
  await pip?.close();
});

async function check(token: string | undefined, path = '/api/v1/products/widget') {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  return view(await adapter.client.check(httpCheck('GET', path, headers)));
}

describe('ext-authz enriching checks from the PIP', () => {
  it('allows when the token’s claim and the stored attributes agree', async () => {
    const response = await check(await sign({ sub: 'alice', department: 'eng' }));
    expect(response).toMatchObject({ allowed: true, status: 200 });
    // The records are cached now: the same check again is answered the same.
    expect(await check(await sign({ sub: 'alice', department: 'eng' }))).toMatchObject({ allowed: true });
  });

  it('denies when the stored attribute differs from the claim', async () => {
    expect(await check(await sign({ sub: 'bob', department: 'eng' }))).toMatchObject({
      allowed: false,
      status: 403,
    });
  });

  it('denies a product of another department, and a product without a record', async () => {
    await pip.put('/v1/attributes/product/ledger', { attributes: { department: 'finance' } });
    const token = await sign({ sub: 'alice', department: 'eng' });
    expect(await check(token, '/api/v1/products/ledger')).toMatchObject({ allowed: false, status: 403 });
    expect(await check(token, '/api/v1/products/unknown')).toMatchObject({ allowed: false, status: 403 });
  });

  it.each([
    ['a bad signature', () => forge({ sub: 'alice', department: 'eng' })],
    [
      'an expired token',
      () => sign({ sub: 'alice', department: 'eng', exp: Math.floor(Date.now() / 1000) - 3600 }),
    ],
    ['an unknown issuer', () => sign({ sub: 'alice', department: 'eng', iss: 'https://other.example' })],
    ['a malformed token', async () => 'not-a-jwt'],
  ])('answers 401 to an invalid token (%s), whatever the policy would say', async (_what, token) => {
    const response = await check(await token());
    expect(response).toMatchObject({ allowed: false, status: 401, body: 'Jwt verification fails' });
    expect(response.headers).toContainEqual(['www-authenticate', 'Bearer error="invalid_token"']);
  });

  it('leaves an anonymous request to the policy, which denies it', async () => {
    expect(await check(undefined)).toMatchObject({ allowed: false, status: 403 });
  });
});
