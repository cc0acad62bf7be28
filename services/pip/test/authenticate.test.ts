// POST /v1/authenticate end to end: each rule option, each bad-token class, JWKS rotation, outage and forged-kid storms.
import { randomUUID } from 'node:crypto';
import { waitFor } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, requestAuthentication, startTestPip, type TestPip } from './pip-fixture.ts';
import { makeKey, type SigningKey, sign, TestIssuer } from './support/issuer.ts';

const now = (): number => Math.floor(Date.now() / 1000);

async function putResource(
  t: TestPip,
  namespace: string,
  name: string,
  rules: Record<string, unknown>[],
  selector?: Record<string, string>,
): Promise<void> {
  const res = await t.pip.app.inject({
    method: 'PUT',
    url: `/v1/request-authentications/${namespace}/${name}`,
    headers: bearer(),
    payload: requestAuthentication(namespace, name, rules, selector),
  });
  expect(res.statusCode, res.body).toBeLessThan(300);
}

function authenticate(t: TestPip, body: Record<string, unknown>) {
  return t.pip.app.inject({ method: 'POST', url: '/v1/authenticate', payload: body });
}

describe('rule options and bad tokens', () => {
  let t: TestPip;
  let issuer: TestIssuer;
  let es: SigningKey;
  let rs: SigningKey;
  let attacker: SigningKey;
  const ISS = 'https://issuer.example';
  const claims = (extra: Record<string, unknown> = {}) => ({
    iss: ISS,
    sub: 'alice',
    aud: 'api',
    azp: 'web-client',
    iat: now() - 10,
    exp: now() + 600,
    org: { id: 'acme', tier: 2 },
    ...extra,
  });

  beforeAll(async () => {
    [es, rs, attacker] = await Promise.all([
      makeKey('ES256', 'es-1'),
      makeKey('RS256', 'rs-1'),
      makeKey('ES256', 'evil'),
    ]);
    issuer = await TestIssuer.start(es, rs);
    t = await startTestPip();
    const base = { issuer: ISS, jwksUri: issuer.jwksUri };
    await putResource(t, 'defaults', 'auth', [base]);
    await putResource(t, 'audiences', 'auth', [{ ...base, audiences: ['api', 'other'] }]);
    await putResource(t, 'inline', 'auth', [{ issuer: ISS, jwks: JSON.stringify({ keys: [es.publicJwk] }) }]);
    await putResource(t, 'headers', 'auth', [
      { ...base, fromHeaders: [{ name: 'X-Jwt', prefix: 'Token ' }] },
    ]);
    await putResource(t, 'params', 'auth', [{ ...base, fromParams: ['tok'] }]);
    await putResource(t, 'cookies', 'auth', [{ ...base, fromCookies: ['session'] }]);
    await putResource(t, 'outputs', 'auth', [
      {
        ...base,
        outputPayloadToHeader: 'x-jwt-payload',
        outputClaimToHeaders: [
          { header: 'x-sub', claim: 'sub' },
          { header: 'x-org', claim: 'org.id' },
          { header: 'x-tier', claim: 'org.tier' },
        ],
      },
    ]);
    await putResource(t, 'forward', 'auth', [{ ...base, forwardOriginalToken: true }]);
    await putResource(t, 'selected', 'auth', [base], { app: 'web' });
    await putResource(t, 'rsonly', 'auth', [{ ...base, 'x-portcullis-algorithms': ['RS256'] }]);
    await putResource(t, 'istio-system', 'mesh-wide', [
      {
        issuer: 'https://mesh.example',
        jwks: JSON.stringify({ keys: [es.publicJwk] }),
        // Its own header: a root-namespace rule reading Authorization would apply to every namespace's tokens.
        fromHeaders: [{ name: 'x-mesh-jwt' }],
      },
    ]);
    await putResource(t, 'down', 'auth', [
      { issuer: 'https://down.example', jwksUri: 'http://127.0.0.1:9/jwks' },
    ]);
  });
  afterAll(async () => {
    await t?.close();
    await issuer?.close();
  });

  it.each<[string, string, () => Promise<Record<string, unknown>>, Record<string, unknown>]>([
    [
      'default Authorization: Bearer',
      'defaults',
      async () => ({ headers: { authorization: `Bearer ${await sign(es, claims())}` } }),
      {},
    ],
    [
      'default access_token query parameter',
      'defaults',
      async () => ({ headers: {}, query: `a=1&access_token=${await sign(rs, claims())}` }),
      {},
    ],
    [
      'audiences (one of them)',
      'audiences',
      async () => ({
        headers: { authorization: `Bearer ${await sign(es, claims({ aud: ['x', 'other'] }))}` },
      }),
      { audiences: ['x', 'other'] },
    ],
    [
      'inline jwks',
      'inline',
      async () => ({ headers: { authorization: `Bearer ${await sign(es, claims())}` } }),
      {},
    ],
    [
      'fromHeaders with a prefix',
      'headers',
      async () => ({ headers: { 'x-jwt': `Token ${await sign(es, claims())}` } }),
      {},
    ],
    ['fromParams', 'params', async () => ({ headers: {}, query: { tok: await sign(es, claims()) } }), {}],
    [
      'fromCookies',
      'cookies',
      async () => ({ headers: { cookie: `a=b; session=${await sign(es, claims())}` } }),
      {},
    ],
    [
      'fromCookies (parsed cookies)',
      'cookies',
      async () => ({ headers: {}, cookies: { session: await sign(es, claims()) } }),
      {},
    ],
    [
      'a selector matching the labels',
      'selected',
      async () => ({
        labels: { app: 'web', v: '1' },
        headers: { authorization: `Bearer ${await sign(es, claims())}` },
      }),
      {},
    ],
    [
      'a root-namespace resource in any namespace',
      'defaults',
      async () => ({
        headers: { 'x-mesh-jwt': `${await sign(es, claims({ iss: 'https://mesh.example' }))}` },
      }),
      { principal: 'https://mesh.example/alice' },
    ],
    [
      'an algorithm allow-list',
      'rsonly',
      async () => ({ headers: { authorization: `Bearer ${await sign(rs, claims())}` } }),
      {},
    ],
  ])('%s', async (_what, namespace, request, expected) => {
    const res = await authenticate(t, { namespace, ...(await request()) });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({
      principal: `${ISS}/alice`,
      audiences: ['api'],
      presenter: 'web-client',
      claims: { sub: 'alice', org: { id: 'acme' } },
      ...expected,
    });
  });

  it.each([
    ['no token', 'defaults', {}],
    ['Authorization without the Bearer prefix', 'defaults', { authorization: 'Basic dXNlcjpwdw==' }],
    ['a token where no rule of the workload reads', 'headers', { authorization: 'Bearer x.y.z' }],
    ['labels that the selector does not match', 'selected', { authorization: 'Bearer x.y.z' }],
  ])('is anonymous with %s', async (_what, namespace, headers) => {
    const res = await authenticate(t, { namespace, labels: { app: 'api' }, headers });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ anonymous: true });
  });

  it('writes outputPayloadToHeader and outputClaimToHeaders, and strips forged copies', async () => {
    const token = await sign(es, claims());
    const res = await authenticate(t, {
      namespace: 'outputs',
      headers: { authorization: `Bearer ${token}`, 'x-sub': 'forged', 'x-other': 'kept' },
    });
    expect(res.statusCode, res.body).toBe(200);
    const { upstream } = res.json();
    expect(upstream.set).toEqual({
      'x-jwt-payload': token.split('.')[1],
      'x-sub': 'alice',
      'x-org': 'acme',
      'x-tier': '2',
    });
    // The token's header goes (forwardOriginalToken is false); output headers are set, so not in remove.
    expect(upstream.remove).toEqual(['authorization']);
    const anonymous = await authenticate(t, { namespace: 'outputs', headers: { 'x-sub': 'forged' } });
    expect(anonymous.json().upstream.remove.sort()).toEqual(['x-jwt-payload', 'x-org', 'x-sub', 'x-tier']);
  });

  it.each([
    ['forwardOriginalToken: false removes the token', 'defaults', [['authorization'], []]],
    ['forwardOriginalToken: true keeps it', 'forward', [[], []]],
  ] as const)('%s', async (_what, namespace, [remove, params]) => {
    const token = await sign(es, claims());
    const res = await authenticate(t, { namespace, headers: { authorization: `Bearer ${token}` } });
    expect(res.json().upstream).toEqual({ set: {}, remove, remove_query_params: params });
  });

  it('drops a query-parameter token upstream unless forwarded', async () => {
    const res = await authenticate(t, {
      namespace: 'params',
      headers: {},
      query: `tok=${await sign(es, claims())}`,
    });
    expect(res.json().upstream.remove_query_params).toEqual(['tok']);
  });

  it.each<[string, string, () => Promise<Record<string, unknown>>, number]>([
    ['malformed', 'defaults', async () => ({ authorization: 'Bearer not.a-jwt' }), 401],
    [
      'bad_signature',
      'defaults',
      async () => ({ authorization: `Bearer ${await sign(attacker, claims(), { kid: 'es-1' })}` }),
      401,
    ],
    [
      'expired',
      'defaults',
      async () => ({ authorization: `Bearer ${await sign(es, claims({ exp: now() - 3600 }))}` }),
      401,
    ],
    [
      'not_yet_valid',
      'defaults',
      async () => ({ authorization: `Bearer ${await sign(es, claims({ nbf: now() + 3600 }))}` }),
      401,
    ],
    [
      'wrong_audience',
      'audiences',
      async () => ({ authorization: `Bearer ${await sign(es, claims({ aud: 'nobody' }))}` }),
      403,
    ],
    [
      'unknown_issuer',
      'defaults',
      async () => ({
        authorization: `Bearer ${await sign(es, claims({ iss: 'https://stranger.example' }))}`,
      }),
      401,
    ],
    [
      'unknown_kid',
      'defaults',
      async () => ({ authorization: `Bearer ${await sign(attacker, claims(), { kid: 'never-published' })}` }),
      401,
    ],
    [
      'disallowed_algorithm',
      'rsonly',
      async () => ({ authorization: `Bearer ${await sign(es, claims())}` }),
      401,
    ],
    [
      'disallowed_algorithm',
      'defaults',
      async () => {
        const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
        return { authorization: `Bearer ${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims())}.c2ln` };
      },
      401,
    ],
    [
      'token_too_large',
      'defaults',
      async () => ({ authorization: `Bearer ${await sign(es, claims({ pad: 'x'.repeat(9000) }))}` }),
      401,
    ],
    [
      'duplicate_tokens',
      'defaults',
      async () => ({
        authorization: `Bearer ${await sign(es, claims())}`,
        'x-unused': 'ignored',
      }),
      401,
    ],
    [
      'jwks_unavailable',
      'down',
      async () => ({ authorization: `Bearer ${await sign(es, claims({ iss: 'https://down.example' }))}` }),
      401,
    ],
  ])('refuses a token: %s', async (code, namespace, headers, status) => {
    const extra =
      code === 'duplicate_tokens' ? { query: `access_token=${await sign(es, claims({ sub: 'bob' }))}` } : {};
    const res = await authenticate(t, { namespace, headers: await headers(), ...extra });
    expect(res.statusCode, res.body).toBe(status);
    expect(res.json()).toMatchObject({ code });
    expect(typeof res.json().message).toBe('string');
  });

  it('counts refusals by reason in /metrics', async () => {
    const res = await t.pip.app.inject({ url: '/metrics' });
    for (const code of ['expired', 'bad_signature', 'unknown_kid', 'duplicate_tokens']) {
      expect(res.body).toMatch(
        new RegExp(`portcullis_pip_jwt_verifications_total\\{[^}]*code="${code}"[^}]*\\} [1-9]`),
      );
    }
    expect(res.body).toMatch(/portcullis_pip_jwks_fetches_total\{[^}]*outcome="success"/);
    expect(res.body).toMatch(/portcullis_pip_jwks_key_age_seconds\{[^}]*issuer="https:\/\/issuer.example"/);
  });

  it('stays ready with an issuer whose keys cannot be fetched, and says so', async () => {
    const res = await t.pip.app.inject({ url: '/readyz' });
    expect(res.statusCode).toBe(200);
    expect(res.json().components.jwks).toMatchObject({
      state: 'WARN',
      message: expect.stringContaining('down.example'),
    });
  });

  it('answers a request body that is not an authentication request with 400', async () => {
    const res = await authenticate(t, { headers: {} });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('validation_failed');
  });
});

describe('JWKS rotation and outage', () => {
  let t: TestPip;
  let issuer: TestIssuer;
  let k1: SigningKey;
  let k2: SigningKey;
  const ISS = 'https://rotating.example';

  beforeAll(async () => {
    [k1, k2] = await Promise.all([makeKey('ES256', 'k1'), makeKey('RS256', 'k2')]);
    issuer = await TestIssuer.start(k1);
    issuer.cacheControl = 'max-age=0';
    // Key sets are fresh for 100 ms: an expired set keeps serving while a background refresh runs.
    t = await startTestPip({ PIP_JWKS_MIN_REFRESH: '100ms' });
    await putResource(t, 'rot', 'auth', [{ issuer: ISS, jwksUri: issuer.jwksUri }]);
  });
  afterAll(async () => {
    await t?.close();
    await issuer?.close();
  });

  const token = (key: SigningKey) => sign(key, { iss: ISS, sub: 'svc', exp: now() + 600 });
  const check = async (key: SigningKey): Promise<number> =>
    (await authenticate(t, { namespace: 'rot', headers: { authorization: `Bearer ${await token(key)}` } }))
      .statusCode;

  it('rotates keys (new kid published, then used, then the old one retired) without a failed request', async () => {
    const statuses: number[] = [];
    statuses.push(await check(k1));
    issuer.keys = [k1, k2];
    // Traffic keeps flowing with the old key until a background refresh has picked up the new one.
    await waitFor(
      async () => {
        statuses.push(await check(k1));
        return t.pip.services.jwks.snapshot().some((e) => e.issuer === ISS && e.keyCount === 2);
      },
      { timeoutMs: 10_000, message: 'the new key to be fetched' },
    );
    statuses.push(await check(k2));
    issuer.keys = [k2];
    await waitFor(
      async () => {
        statuses.push(await check(k2));
        return t.pip.services.jwks.snapshot().some((e) => e.issuer === ISS && e.keyCount === 1);
      },
      { timeoutMs: 10_000, message: 'the old key to be retired' },
    );
    expect(
      statuses.every((s) => s === 200),
      statuses.join(','),
    ).toBe(true);
    expect(await check(k1)).toBe(401);
  });

  it('keeps verifying with cached keys while the JWKS server is down', async () => {
    const before = issuer.jwksRequests;
    issuer.up = false;
    await waitFor(
      async () => {
        expect(await check(k2)).toBe(200);
        return issuer.jwksRequests > before && t.pip.services.jwks.status().state === 'WARN';
      },
      { timeoutMs: 10_000, message: 'a failed refresh' },
    );
    for (let i = 0; i < 5; i++) expect(await check(k2)).toBe(200);
    await expect(t.pip.app.inject({ url: '/readyz' }).then((r) => r.statusCode)).resolves.toBe(200);
    await issuer.close();
    for (let i = 0; i < 5; i++) expect(await check(k2)).toBe(200);
  });
});

describe('forged-kid storm', () => {
  let t: TestPip;
  let issuer: TestIssuer;
  let key: SigningKey;
  let attacker: SigningKey;
  const ISS = 'https://stormy.example';
  const INTERVAL_MS = 250;

  beforeAll(async () => {
    [key, attacker] = await Promise.all([makeKey('ES256', 'real'), makeKey('ES256', 'evil')]);
    issuer = await TestIssuer.start(key);
    t = await startTestPip({ PIP_JWKS_UNKNOWN_KID_REFRESH: `${INTERVAL_MS}ms` });
    await putResource(t, 'storm', 'auth', [{ issuer: ISS, jwksUri: issuer.jwksUri }]);
  });
  afterAll(async () => {
    await t?.close();
    await issuer?.close();
  });

  it('refetches the JWKS at most once per interval, and real tokens keep working', async () => {
    const good = await sign(key, { iss: ISS, sub: 'svc', exp: now() + 600 });
    const ok = await authenticate(t, { namespace: 'storm', headers: { authorization: `Bearer ${good}` } });
    expect(ok.statusCode).toBe(200);
    const before = issuer.jwksRequests;
    const started = Date.now();
    const codes = new Set<string>();
    let sent = 0;
    while (Date.now() - started < 1200) {
      const forged = await Promise.all(
        Array.from({ length: 20 }, () =>
          sign(attacker, { iss: ISS, sub: 'x', exp: now() + 600 }, { kid: randomUUID() }),
        ),
      );
      const answers = await Promise.all(
        forged.map((f) => authenticate(t, { namespace: 'storm', headers: { authorization: `Bearer ${f}` } })),
      );
      for (const a of answers) codes.add(`${a.statusCode} ${a.json().code}`);
      sent += forged.length;
    }
    const elapsed = Date.now() - started;
    const fetches = issuer.jwksRequests - before;
    expect([...codes]).toEqual(['401 unknown_kid']);
    expect(sent).toBeGreaterThan(40);
    expect(fetches).toBeLessThanOrEqual(Math.ceil(elapsed / INTERVAL_MS) + 1);
    const still = await authenticate(t, { namespace: 'storm', headers: { authorization: `Bearer ${good}` } });
    expect(still.statusCode).toBe(200);
  });
});
