// End to end: a PDP enriching decision inputs from a PIP (JWT identity, subject and resource attributes) over the Data API and gRPC Decide.
import { buildBundleArchive } from '@portcullis/bundle';
import { compileWasm } from '@portcullis/engine';
import { buildPdp, DECISIONS_PROTO, DECISIONS_SERVICE, loadPdpConfig, type Pdp } from '@portcullis/pdp';
import { buildPip, loadPipConfig, type Pip } from '@portcullis/pip';
import { StaticPolicyDistribution } from '@portcullis/policy-sync';
import {
  type Bus,
  createBus,
  createLogger,
  createMetrics,
  grpc,
  Health,
  loadProtos,
  serviceClient,
  unary,
} from '@portcullis/runtime';
import { createTestDatabase, opaBin, type TestDatabase, waitFor } from '@portcullis/testkit';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const PIP_TOKEN = 'pdp-enrichment-admin-token-0123456789';
const ISS = 'https://idp.shop.example';

/** Allows only when the token's department claim and the caller's stored department agree. */
const MODULES = {
  'shop/authz.rego': `package shop.authz

default allow := false

allow if {
	input.identity.claims.department == input.subject.attributes.department
	input.subject.attributes.department == input.resource.attributes.department
}

identity_error := input.identity.error.code
`,
};
const ENTRYPOINTS = ['shop/authz/allow', 'shop/authz/identity_error'];

let db: TestDatabase;
let bus: Bus;
let pip: Pip;
let pdp: Pdp;
let distribution: StaticPolicyDistribution;
let httpUrl: string;
let client: grpc.Client;
type Signer = (claims: Record<string, unknown>) => Promise<string>;
let sign: Signer;
let forge: Signer;

async function pipApi(url: string, payload: object): Promise<void> {
  const res = await pip.app.inject({
    method: 'PUT',
    url,
    headers: { authorization: `Bearer ${PIP_TOKEN}` },
    payload,
  });
  expect(res.statusCode, res.body).toBeLessThan(300);
}

async function signer(kid: string): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  signerJwks.set(kid, { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' });
  return (claims) =>
    new SignJWT({ iss: ISS, exp: Math.floor(Date.now() / 1000) + 600, ...claims })
      .setProtectedHeader({ alg: 'ES256', kid })
      .sign(privateKey);
}
const signerJwks = new Map<string, Record<string, unknown>>();

beforeAll(async () => {
  db = await createTestDatabase();
  const logger = createLogger('pdp-enrichment', 'silent');
  bus = createBus({ transport: 'postgres', url: db.url, pollIntervalMs: 200 }, logger);
  pip = await buildPip({
    config: loadPipConfig({
      DATABASE_URL: db.url,
      PIP_ADMIN_TOKEN: PIP_TOKEN,
      PIP_HTTP_PORT: '0',
      PIP_GRPC_PORT: '0',
    }),
    logger,
    metrics: createMetrics('pip'),
    health: new Health(),
    bus,
  });
  const { grpcPort: pipPort } = await pip.listen();
  sign = await signer('idp-1');
  const idpJwk = signerJwks.get('idp-1');
  // Same kid, another key: a token with a bad signature.
  forge = await signer('idp-1');
  await pipApi('/v1/request-authentications/shop/jwt', {
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    spec: { jwtRules: [{ issuer: ISS, jwks: JSON.stringify({ keys: [idpJwk] }) }] },
  });
  await pipApi('/v1/attributes/user/alice', { attributes: { department: 'eng' } });
  await pipApi('/v1/attributes/user/bob', { attributes: { department: 'sales' } });
  await pipApi('/v1/attributes/product/widget', { attributes: { department: 'eng' } });

  const compiled = await compileWasm({
    opaBin: opaBin(),
    modules: MODULES,
    data: {},
    entrypoints: ENTRYPOINTS,
  });
  const archive = await buildBundleArchive({
    modules: MODULES,
    data: {},
    wasm: compiled.wasm,
    entrypoints: ENTRYPOINTS,
    revision: '1',
  });
  distribution = new StaticPolicyDistribution({ logger, metrics: createMetrics('pdp-enrichment-pap') });
  distribution.activate(archive, { bundle: 'shop', revision: 1 });
  const papAddress = await distribution.listen();
  pdp = await buildPdp({
    config: loadPdpConfig({
      PAP_GRPC_ADDR: papAddress,
      PDP_HTTP_PORT: '0',
      PDP_GRPC_PORT: '0',
      PDP_CACHE_DIR: 'off',
      PDP_EVALUATOR: 'in-thread',
      PDP_DECISION_LOG: 'false',
      PDP_PIP_ADDR: `127.0.0.1:${pipPort}`,
      // Generous for a busy machine.
      PDP_PIP_TIMEOUT: '10s',
      PDP_ENRICH_NAMESPACE: 'shop',
      PDP_ENRICH_SUBJECT: 'user:claim=sub',
      PDP_ENRICH_RESOURCE: 'product:path=/api/v1/products/{id}',
    }),
    logger,
    metrics: createMetrics('pdp-enrichment'),
    health: new Health(),
    bus,
  });
  ({ httpUrl } = await pdp.listen().then(async (bound) => {
    const Client = serviceClient(loadProtos([DECISIONS_PROTO]), DECISIONS_SERVICE);
    client = new Client(`127.0.0.1:${bound.grpcPort}`, grpc.credentials.createInsecure());
    return bound;
  }));
  await waitFor(() => pdp.documents.bundles().length > 0, { message: 'the bundle to load' });
}, 180_000);

afterAll(async () => {
  client?.close();
  await pdp?.close();
  await distribution?.close();
  await pip?.close();
  await bus?.close();
  await db?.drop();
});

/** An Envoy-shaped input, as ext_authz or OPA-Envoy would send it. */
function envoyInput(token: string | undefined, path = '/api/v1/products/widget'): object {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  return { attributes: { request: { http: { method: 'GET', path, headers } } } };
}

async function viaHttp(path: string, input: object): Promise<unknown> {
  const res = await fetch(`${httpUrl}/v1/data/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ input }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { result?: unknown }).result;
}

async function viaGrpc(path: string, input: object): Promise<unknown> {
  const res: { result: string; undefined: boolean } = await unary(client, 'Decide', {
    path,
    input: JSON.stringify(input),
  });
  return res.undefined ? undefined : JSON.parse(res.result);
}

describe.each([
  ['the Data API', viaHttp],
  ['gRPC Decide', viaGrpc],
])('a PDP enriching inputs from the PIP, via %s', (_door, decide) => {
  it('allows when the token’s claim and the stored attributes agree', async () => {
    const token = await sign({ sub: 'alice', department: 'eng' });
    expect(await decide('shop/authz/allow', envoyInput(token))).toBe(true);
    // Cached now: the same decision again.
    expect(await decide('shop/authz/allow', envoyInput(token))).toBe(true);
  });

  it('reads a plain input’s token and path', async () => {
    const token = await sign({ sub: 'alice', department: 'eng' });
    expect(await decide('shop/authz/allow', { token, path: '/api/v1/products/widget' })).toBe(true);
    expect(await decide('shop/authz/allow', { token, path: '/api/v1/products/other' })).toBe(false);
  });

  it('denies when the stored attribute differs from the claim', async () => {
    const token = await sign({ sub: 'bob', department: 'eng' });
    expect(await decide('shop/authz/allow', envoyInput(token))).toBe(false);
  });

  it('annotates an invalid token for the policy, which denies', async () => {
    const token = await forge({ sub: 'alice', department: 'eng' });
    expect(await decide('shop/authz/allow', envoyInput(token))).toBe(false);
    expect(await decide('shop/authz/identity_error', envoyInput(token))).toEqual(expect.any(String));
    expect(await decide('shop/authz/identity_error', envoyInput('not-a-jwt'))).toEqual(expect.any(String));
  });

  it('leaves an anonymous input to the policy', async () => {
    expect(await decide('shop/authz/allow', envoyInput(undefined))).toBe(false);
  });
});

describe('attribute changes', () => {
  it('reach the PDP’s cache over the bus', async () => {
    const token = await sign({ sub: 'carol', department: 'eng' });
    await pipApi('/v1/attributes/user/carol', { attributes: { department: 'sales' } });
    expect(await viaHttp('shop/authz/allow', envoyInput(token))).toBe(false);
    await pipApi('/v1/attributes/user/carol', { attributes: { department: 'eng' } });
    await waitFor(async () => (await viaGrpc('shop/authz/allow', envoyInput(token))) === true, {
      message: 'the change event to drop the cached record',
    });
  });
});
