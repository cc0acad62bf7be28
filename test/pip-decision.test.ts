// End to end: a decision that depends on a JWT claim and stored attributes, through the PIP, the enricher and the engine.
// (This drives the engine with the enriched input directly; test/ext-authz-enrichment.test.ts does it through the ext-authz process.)
import { AttributeCache, Enricher, GrpcAttributeSource, GrpcIdentitySource } from '@portcullis/attributes';
import { compileWasm, PolicyEngine } from '@portcullis/engine';
import { buildPip, loadPipConfig, type Pip } from '@portcullis/pip';
import { type Bus, createBus, createLogger, createMetrics, Health } from '@portcullis/runtime';
import { createTestDatabase, opaBin, type TestDatabase, waitFor } from '@portcullis/testkit';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const TOKEN = 'pip-decision-admin-token-0123456789';
const ISS = 'https://idp.example';
const POLICY = `package authz

default allow := false

# Editors may change documents of their own team.
allow if {
	input.identity.claims.role == "editor"
	input.subject.attributes.team == input.resource.attributes.team
}
`;

let db: TestDatabase;
let bus: Bus;
let pip: Pip;
let engine: PolicyEngine;
let enricher: Enricher;
let cache: AttributeCache;
let identity: GrpcIdentitySource;
let source: GrpcAttributeSource;
let sign: (claims: Record<string, unknown>) => Promise<string>;

async function api(method: string, url: string, payload: unknown): Promise<void> {
  const res = await pip.app.inject({
    method: method as 'PUT',
    url,
    headers: { authorization: `Bearer ${TOKEN}` },
    payload: payload as object,
  });
  expect(res.statusCode, res.body).toBeLessThan(300);
}

beforeAll(async () => {
  db = await createTestDatabase();
  const logger = createLogger('pip-decision', 'silent');
  bus = createBus({ transport: 'postgres', url: db.url, pollIntervalMs: 200 }, logger);
  pip = await buildPip({
    config: loadPipConfig({
      DATABASE_URL: db.url,
      PIP_ADMIN_TOKEN: TOKEN,
      PIP_HTTP_PORT: '0',
      PIP_GRPC_PORT: '0',
    }),
    logger,
    metrics: createMetrics('pip'),
    health: new Health(),
    bus,
  });
  const { grpcPort } = await pip.listen();
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'idp-1', alg: 'ES256', use: 'sig' };
  sign = (claims) =>
    new SignJWT({ iss: ISS, exp: Math.floor(Date.now() / 1000) + 600, ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: 'idp-1' })
      .sign(privateKey);
  await api('PUT', '/v1/request-authentications/docs/jwt', {
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    spec: { jwtRules: [{ issuer: ISS, jwks: JSON.stringify({ keys: [jwk] }) }] },
  });
  await api('PUT', '/v1/attributes/user/alice', { attributes: { team: 'red' } });
  await api('PUT', '/v1/attributes/user/bob', { attributes: { team: 'blue' } });
  await api('PUT', '/v1/attributes/document/plan', { attributes: { team: 'red' } });

  const compiled = await compileWasm({
    opaBin: opaBin(),
    modules: { 'authz.rego': POLICY },
    entrypoints: ['authz/allow'],
  });
  engine = new PolicyEngine();
  await engine.load({
    bundle: 'authz',
    revision: 1,
    digest: compiled.digest,
    wasm: compiled.wasm,
    data: compiled.data,
    entrypoints: compiled.entrypoints,
  });

  const address = `127.0.0.1:${grpcPort}`;
  identity = new GrpcIdentitySource({ address });
  source = new GrpcAttributeSource({ address });
  cache = new AttributeCache({ source, bus, ttlMs: 60_000 });
  await cache.start();
  enricher = new Enricher({
    config: {
      namespace: 'docs',
      subject: { kind: 'user', id: { claim: 'sub' } },
      resource: { kind: 'document', id: { path: '/documents/{doc}', param: 'doc' } },
    },
    attributes: cache,
    identity,
  });
}, 120_000);

afterAll(async () => {
  await cache?.stop();
  identity?.close();
  source?.close();
  await pip?.close();
  await bus?.close();
  await db?.drop();
});

async function decide(
  claims: Record<string, unknown> | undefined,
  path = '/documents/plan',
): Promise<unknown> {
  const headers: Record<string, string> =
    claims === undefined ? {} : { authorization: `Bearer ${await sign(claims)}` };
  const input = { attributes: { request: { http: { method: 'PUT', path, headers } } } };
  return engine.evaluate('authz/allow', await enricher.enrich(input)).result;
}

describe('a decision depending on a JWT claim and stored attributes', () => {
  it.each([
    ['an editor of the document’s team', { sub: 'alice', role: 'editor' }, true],
    ['a viewer of the document’s team', { sub: 'alice', role: 'viewer' }, false],
    ['an editor of another team', { sub: 'bob', role: 'editor' }, false],
    ['an editor without stored attributes', { sub: 'carol', role: 'editor' }, false],
    ['an anonymous request', undefined, false],
  ])('%s', async (_who, claims, allowed) => {
    expect(await decide(claims)).toBe(allowed);
  });

  it('follows an attribute change once its event reaches the cache', async () => {
    expect(await decide({ sub: 'bob', role: 'editor' })).toBe(false);
    await api('PUT', '/v1/attributes/user/bob', { attributes: { team: 'red' } });
    await waitFor(async () => (await decide({ sub: 'bob', role: 'editor' })) === true, {
      timeoutMs: 20_000,
      message: "bob's new team to reach the decision",
    });
  });
});
