// End to end: a PDP enriching decision inputs from a PIP (JWT identity, subject and resource attributes) over the Data API and gRPC Decide.
import { buildBundleArchive } from '@portcullis/bundle';
import { compileWasm } from '@portcullis/engine';
import { buildPdp, DECISIONS_PROTO, DECISIONS_SERVICE, loadPdpConfig, type Pdp } from '@portcullis/pdp';
import { StaticPolicyDistribution } from '@portcullis/policy-sync';
import {
  createLogger,
  createMetrics,
  grpc,
  Health,
  loadProtos,
  serviceClient,
  unary,
} from '@portcullis/runtime';
import { opaBin, waitFor } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { es256Issuer, type Signer, startTestPip, type TestPip } from './pip-fixture.ts';

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

let pip: TestPip;
let pdp: Pdp;
let distribution: StaticPolicyDistribution;
let httpUrl: string;
let client: grpc.Client;
let sign: Signer;
let forge: Signer;

beforeAll(async () => {
  const logger = createLogger('pdp-enrichment', 'silent');
  pip = await startTestPip('pdp-enrichment');
  const idp = await es256Issuer(ISS, 'idp-1');
  sign = idp.sign;
  // Same kid, another key: a token with a bad signature.
  forge = (await es256Issuer(ISS, 'idp-1')).sign;
  await pip.put('/v1/request-authentications/shop/jwt', {
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    spec: { jwtRules: [{ issuer: ISS, jwks: JSON.stringify({ keys: [idp.jwk] }) }] },
  });
  await pip.put('/v1/attributes/user/alice', { attributes: { department: 'eng' } });
  await pip.put('/v1/attributes/user/bob', { attributes: { department: 'sales' } });
  await pip.put('/v1/attributes/product/widget', { attributes: { department: 'eng' } });

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
      PDP_PIP_ADDR: `127.0.0.1:${pip.grpcPort}`,
      // Generous for a busy machine.
      PDP_PIP_TIMEOUT: '10s',
      PDP_ENRICH_NAMESPACE: 'shop',
      PDP_ENRICH_SUBJECT: 'user:claim=sub',
      PDP_ENRICH_RESOURCE: 'product:path=/api/v1/products/{id}',
    }),
    logger,
    metrics: createMetrics('pdp-enrichment'),
    health: new Health(),
    bus: pip.bus,
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
    await pip.put('/v1/attributes/user/carol', { attributes: { department: 'sales' } });
    expect(await viaHttp('shop/authz/allow', envoyInput(token))).toBe(false);
    await pip.put('/v1/attributes/user/carol', { attributes: { department: 'eng' } });
    await waitFor(async () => (await viaGrpc('shop/authz/allow', envoyInput(token))) === true, {
      message: 'the change event to drop the cached record',
    });
  });
});
