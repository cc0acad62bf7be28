// The PIP's gRPC services with real clients: Identity/Authenticate and Attributes/Get and BatchGet.
import { GrpcAttributeSource, GrpcIdentitySource } from '@portcullis/attributes';
import { AuthenticationError } from '@portcullis/identity';
import { grpc, loadProtos, serviceClient, unary } from '@portcullis/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, requestAuthentication, startTestPip, type TestPip } from './pip-fixture.ts';
import { makeKey, type SigningKey, sign } from './support/issuer.ts';

let t: TestPip;
let address: string;
let key: SigningKey;
let identity: GrpcIdentitySource;
let attributes: GrpcAttributeSource;
let raw: grpc.Client;
const ISS = 'https://grpc.example';
const now = (): number => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  key = await makeKey('ES256', 'g1');
  t = await startTestPip();
  const { grpcPort } = await t.pip.listen();
  address = `127.0.0.1:${grpcPort}`;
  const rules = [
    {
      issuer: ISS,
      jwks: JSON.stringify({ keys: [key.publicJwk] }),
      outputClaimToHeaders: [{ header: 'x-user', claim: 'sub' }],
    },
  ];
  await t.pip.app.inject({
    method: 'PUT',
    url: '/v1/request-authentications/apps/auth',
    headers: bearer(),
    payload: requestAuthentication('apps', 'auth', rules),
  });
  for (const [id, attrs] of [
    ['alice', { role: 'admin' }],
    ['bob', { role: 'dev' }],
  ] as const) {
    await t.pip.app.inject({
      method: 'PUT',
      url: `/v1/attributes/user/${id}`,
      headers: bearer(),
      payload: { attributes: attrs },
    });
  }
  identity = new GrpcIdentitySource({ address });
  attributes = new GrpcAttributeSource({ address });
  const Client = serviceClient(loadProtos(['portcullis/pip/v1/pip.proto']), 'portcullis.pip.v1.Identity');
  raw = new Client(address, grpc.credentials.createInsecure());
});

afterAll(async () => {
  identity?.close();
  attributes?.close();
  raw?.close();
  await t?.close();
});

describe('Identity/Authenticate', () => {
  it('answers the verified identity', async () => {
    const token = await sign(key, { iss: ISS, sub: 'alice', aud: ['a', 'b'], azp: 'cli', exp: now() + 60 });
    const outcome = await identity.authenticate({
      namespace: 'apps',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(outcome).toMatchObject({
      anonymous: false,
      principal: `${ISS}/alice`,
      audiences: ['a', 'b'],
      presenter: 'cli',
      claims: { sub: 'alice' },
    });
  });

  it('answers header mutations in-band', async () => {
    const token = await sign(key, { iss: ISS, sub: 'alice', exp: now() + 60 });
    const res = await unary<unknown, Record<string, unknown>>(raw, 'Authenticate', {
      namespace: 'apps',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res).toMatchObject({
      outcome: 'AUTHENTICATED',
      set_headers: [{ name: 'x-user', value: 'alice' }],
      remove_headers: ['authorization'],
    });
  });

  it.each([
    ['no token', {}, { anonymous: true }],
    ['a token in another location only', { 'x-other': 'abc' }, { anonymous: true }],
  ])('is anonymous with %s', async (_what, headers, expected) => {
    expect(await identity.authenticate({ namespace: 'apps', headers })).toEqual(expected);
  });

  it.each([
    ['expired', async () => sign(key, { iss: ISS, sub: 'a', exp: now() - 3600 })],
    ['malformed', async () => 'a.b'],
    ['unknown_issuer', async () => sign(key, { iss: 'https://x.example', sub: 'a', exp: now() + 60 })],
  ])('rejects a %s token with its code', async (code, make) => {
    const error = await identity
      .authenticate({ namespace: 'apps', headers: { authorization: `Bearer ${await make()}` } })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(AuthenticationError);
    expect((error as AuthenticationError).code).toBe(code);
  });

  it('refuses duplicate tokens sent as repeated header values', async () => {
    const [a, b] = await Promise.all([
      sign(key, { iss: ISS, sub: 'a', exp: now() + 60 }),
      sign(key, { iss: ISS, sub: 'b', exp: now() + 60 }),
    ]);
    const error = await identity
      .authenticate({ namespace: 'apps', headers: { authorization: [`Bearer ${a}`, `Bearer ${b}`] } })
      .catch((e: unknown) => e);
    expect((error as AuthenticationError).code).toBe('duplicate_tokens');
  });
});

describe('Attributes', () => {
  it('BatchGet answers each key in order, missing ones as undefined', async () => {
    const values = await attributes.batchGet([
      { kind: 'user', id: 'bob' },
      { kind: 'user', id: 'nobody' },
      { kind: 'user', id: 'alice' },
    ]);
    expect(values).toEqual([
      { attributes: { role: 'dev' }, version: 1 },
      undefined,
      { attributes: { role: 'admin' }, version: 1 },
    ]);
  });

  it('Get answers a record, and NOT_FOUND for a missing one', async () => {
    const Client = serviceClient(loadProtos(['portcullis/pip/v1/pip.proto']), 'portcullis.pip.v1.Attributes');
    const client = new Client(address, grpc.credentials.createInsecure());
    try {
      const record = await unary<unknown, Record<string, unknown>>(client, 'Get', {
        kind: 'user',
        id: 'alice',
      });
      expect(record).toMatchObject({
        kind: 'user',
        id: 'alice',
        attributes_json: '{"role":"admin"}',
        version: '1',
        found: true,
      });
      await expect(unary(client, 'Get', { kind: 'user', id: 'zed' })).rejects.toMatchObject({
        code: 'not_found',
      });
      await expect(unary(client, 'Get', { kind: 'Bad Kind', id: 'x' })).rejects.toMatchObject({
        code: 'bad_request',
      });
      const tooMany = { keys: Array.from({ length: 1001 }, (_, i) => ({ kind: 'user', id: `u${i}` })) };
      await expect(unary(client, 'BatchGet', tooMany)).rejects.toMatchObject({ code: 'bad_request' });
    } finally {
      client.close();
    }
  });
});
