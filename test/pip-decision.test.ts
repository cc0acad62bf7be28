// End to end: a decision that depends on a JWT claim and stored attributes, through the PIP, the enricher and the engine.
// (This drives the engine with the enriched input directly; test/ext-authz-enrichment.test.ts does it through the ext-authz process.)
import { AttributeCache, Enricher, GrpcAttributeSource, GrpcIdentitySource } from '@portcullis/attributes';
import { compileWasm, PolicyEngine } from '@portcullis/engine';
import { opaBin, waitFor } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { es256Issuer, type Signer, startTestPip, type TestPip } from './pip-fixture.ts';

const ISS = 'https://idp.example';
const POLICY = `package authz

default allow := false

# Editors may change documents of their own team.
allow if {
	input.identity.claims.role == "editor"
	input.subject.attributes.team == input.resource.attributes.team
}
`;

let pip: TestPip;
let engine: PolicyEngine;
let enricher: Enricher;
let cache: AttributeCache;
let identity: GrpcIdentitySource;
let source: GrpcAttributeSource;
let sign: Signer;

beforeAll(async () => {
  pip = await startTestPip('pip-decision');
  const idp = await es256Issuer(ISS, 'idp-1');
  sign = idp.sign;
  await pip.put('/v1/request-authentications/docs/jwt', {
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    spec: { jwtRules: [{ issuer: ISS, jwks: JSON.stringify({ keys: [idp.jwk] }) }] },
  });
  await pip.put('/v1/attributes/user/alice', { attributes: { team: 'red' } });
  await pip.put('/v1/attributes/user/bob', { attributes: { team: 'blue' } });
  await pip.put('/v1/attributes/document/plan', { attributes: { team: 'red' } });

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

  const address = `127.0.0.1:${pip.grpcPort}`;
  identity = new GrpcIdentitySource({ address });
  source = new GrpcAttributeSource({ address });
  cache = new AttributeCache({ source, bus: pip.bus, ttlMs: 60_000 });
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
    await pip.put('/v1/attributes/user/bob', { attributes: { team: 'red' } });
    await waitFor(async () => (await decide({ sub: 'bob', role: 'editor' })) === true, {
      timeoutMs: 20_000,
      message: "bob's new team to reach the decision",
    });
  });
});
