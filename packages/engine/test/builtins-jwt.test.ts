// Differential test of the io.jwt.* host builtins against `opa eval`, with keys and tokens made at test time.
import { createHmac } from 'node:crypto';
import { CompactSign } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { type DiffCase, type DiffOutcome, differential, lit } from './differential.ts';
import { b64url, generateTestKeys, sign, type TestKeys } from './jwt-keys.ts';

const SECRET = 's3cret';
const FAR = 4102444800; // 2100-01-01
const claims = { sub: 'alice', iss: 'https://issuer.example', aud: 'svc', nbf: 1500000000, exp: FAR };

interface Fixture {
  k: TestKeys;
  t: Record<string, string>;
  jwk: (m: { jwk: Record<string, unknown> }, extra?: Record<string, unknown>) => string;
}

/** HS256 over arbitrary header and payload text (for shapes jose refuses to produce). */
function rawHs256(header: unknown, payload: string): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

async function fixture(): Promise<Fixture> {
  const k = await generateTestKeys();
  const secret = new TextEncoder().encode(SECRET);
  const t: Record<string, string> = {};
  for (const bits of [256, 384, 512]) {
    t[`RS${bits}`] = await sign(claims, `RS${bits}`, k.rsa.privateKey);
    t[`PS${bits}`] = await sign(claims, `PS${bits}`, k.rsa.privateKey);
    t[`HS${bits}`] = await sign(claims, `HS${bits}`, secret);
  }
  t['ES256'] = await sign(claims, 'ES256', k.p256.privateKey);
  t['ES384'] = await sign(claims, 'ES384', k.p384.privateKey);
  t['ES512'] = await sign(claims, 'ES512', k.p521.privateKey);
  t['EdDSA'] = await sign(claims, 'EdDSA', k.ed25519.privateKey);
  t['RS256kid1'] = await sign(claims, 'RS256', k.rsa.privateKey, { kid: 'k1' });
  t['RS256kid2'] = await sign(claims, 'RS256', k.rsa.privateKey, { kid: 'k2' });
  t['expired'] = await sign({ ...claims, exp: 1000000000 }, 'HS256', secret);
  t['notYet'] = await sign({ ...claims, nbf: 4000000000 }, 'HS256', secret);
  t['audList'] = await sign({ ...claims, aud: ['other', 'svc'] }, 'HS256', secret);
  t['noAud'] = await sign({ sub: 'alice', iss: 'https://issuer.example', exp: FAR }, 'HS256', secret);
  t['noClaims'] = await sign({}, 'HS256', secret);
  t['expString'] = rawHs256({ alg: 'HS256' }, JSON.stringify({ exp: 'tomorrow' }));
  t['bigInt'] = rawHs256({ alg: 'HS256' }, '{"n":12345678901234567890,"f":1.5,"nested":{"a":[1,2]}}');
  t['arrayPayload'] = rawHs256({ alg: 'HS256' }, '[1,2]');
  t['critUnknown'] = rawHs256({ alg: 'HS256', crit: ['x-custom'], 'x-custom': 1 }, JSON.stringify(claims));
  t['critKnown'] = rawHs256({ alg: 'HS256', crit: ['kid'], kid: 'a' }, JSON.stringify(claims));
  t['noAlg'] = rawHs256({ typ: 'JWT' }, JSON.stringify(claims));
  t['jwe'] = `${b64url({ alg: 'RSA-OAEP', enc: 'A256GCM' })}.${b64url('x')}.${b64url('y')}`;
  const inner = await sign({ sub: 'inner', aud: 'svc' }, 'HS256', secret);
  t['nested'] = await new CompactSign(new TextEncoder().encode(inner))
    .setProtectedHeader({ alg: 'HS256', cty: 'JWT' })
    .sign(secret);
  const [h, p, s] = t['RS256']!.split('.');
  t['tampered'] = `${h}.${b64url({ ...claims, sub: 'mallory' })}.${s}`;
  t['badSig'] = `${h}.${p}.@@@`;
  t['twoParts'] = `${h}.${p}`;
  t['badHeader'] = `!!.${p}.${s}`;
  const jwk = (m: { jwk: Record<string, unknown> }, extra: Record<string, unknown> = {}): string =>
    JSON.stringify({ ...m.jwk, ...extra });
  return { k, t, jwk };
}

type CaseDef = {
  name: string;
  expr: (f: Fixture) => string;
  want?: 'true' | 'false' | 'undefined' | 'defined';
};

const verifyCases: CaseDef[] = [
  ...[256, 384, 512].flatMap((bits): CaseDef[] => [
    {
      name: `verify_rs${bits} pem`,
      expr: (f) => `io.jwt.verify_rs${bits}(${lit(f.t[`RS${bits}`]!)}, ${lit(f.k.rsa.pem)})`,
      want: 'true',
    },
    {
      name: `verify_rs${bits} cert`,
      expr: (f) => `io.jwt.verify_rs${bits}(${lit(f.t[`RS${bits}`]!)}, ${lit(f.k.rsaCert)})`,
      want: 'true',
    },
    {
      name: `verify_rs${bits} jwk`,
      expr: (f) => `io.jwt.verify_rs${bits}(${lit(f.t[`RS${bits}`]!)}, ${lit(f.jwk(f.k.rsa))})`,
      want: 'true',
    },
    {
      name: `verify_rs${bits} other key`,
      expr: (f) => `io.jwt.verify_rs${bits}(${lit(f.t[`RS${bits}`]!)}, ${lit(f.k.rsa2.pem)})`,
      want: 'false',
    },
    {
      name: `verify_ps${bits} pem`,
      expr: (f) => `io.jwt.verify_ps${bits}(${lit(f.t[`PS${bits}`]!)}, ${lit(f.k.rsa.pem)})`,
      want: 'true',
    },
    {
      name: `verify_ps${bits} jwk`,
      expr: (f) => `io.jwt.verify_ps${bits}(${lit(f.t[`PS${bits}`]!)}, ${lit(f.jwk(f.k.rsa))})`,
      want: 'true',
    },
    {
      name: `verify_ps${bits} rs token`,
      expr: (f) => `io.jwt.verify_ps${bits}(${lit(f.t[`RS${bits}`]!)}, ${lit(f.k.rsa.pem)})`,
      want: 'false',
    },
    {
      name: `verify_hs${bits} secret`,
      expr: (f) => `io.jwt.verify_hs${bits}(${lit(f.t[`HS${bits}`]!)}, ${lit(SECRET)})`,
      want: 'true',
    },
    {
      name: `verify_hs${bits} wrong secret`,
      expr: (f) => `io.jwt.verify_hs${bits}(${lit(f.t[`HS${bits}`]!)}, "nope")`,
      want: 'false',
    },
  ]),
  {
    name: 'verify_es256 pem',
    expr: (f) => `io.jwt.verify_es256(${lit(f.t['ES256']!)}, ${lit(f.k.p256.pem)})`,
    want: 'true',
  },
  {
    name: 'verify_es256 cert',
    expr: (f) => `io.jwt.verify_es256(${lit(f.t['ES256']!)}, ${lit(f.k.p256Cert)})`,
    want: 'true',
  },
  {
    name: 'verify_es256 jwk',
    expr: (f) => `io.jwt.verify_es256(${lit(f.t['ES256']!)}, ${lit(f.jwk(f.k.p256))})`,
    want: 'true',
  },
  {
    name: 'verify_es384 pem',
    expr: (f) => `io.jwt.verify_es384(${lit(f.t['ES384']!)}, ${lit(f.k.p384.pem)})`,
    want: 'true',
  },
  {
    name: 'verify_es512 pem',
    expr: (f) => `io.jwt.verify_es512(${lit(f.t['ES512']!)}, ${lit(f.k.p521.pem)})`,
    want: 'true',
  },
  {
    name: 'verify_es512 jwk',
    expr: (f) => `io.jwt.verify_es512(${lit(f.t['ES512']!)}, ${lit(f.jwk(f.k.p521))})`,
    want: 'true',
  },
  {
    name: 'verify_es256 wrong curve key',
    expr: (f) => `io.jwt.verify_es256(${lit(f.t['ES256']!)}, ${lit(f.k.p384.pem)})`,
    want: 'false',
  },
  {
    name: 'verify_es256 rsa key',
    expr: (f) => `io.jwt.verify_es256(${lit(f.t['ES256']!)}, ${lit(f.k.rsa.pem)})`,
    want: 'false',
  },
  {
    name: 'verify_rs256 ec key',
    expr: (f) => `io.jwt.verify_rs256(${lit(f.t['RS256']!)}, ${lit(f.k.p256.pem)})`,
    want: 'false',
  },
  {
    name: 'verify_eddsa pem',
    expr: (f) => `io.jwt.verify_eddsa(${lit(f.t['EdDSA']!)}, ${lit(f.k.ed25519.pem)})`,
    want: 'true',
  },
  {
    name: 'verify_eddsa jwk',
    expr: (f) => `io.jwt.verify_eddsa(${lit(f.t['EdDSA']!)}, ${lit(f.jwk(f.k.ed25519))})`,
    want: 'true',
  },
  {
    name: 'verify tampered payload',
    expr: (f) => `io.jwt.verify_rs256(${lit(f.t['tampered']!)}, ${lit(f.k.rsa.pem)})`,
    want: 'false',
  },
  {
    name: 'verify bad signature encoding',
    expr: (f) => `io.jwt.verify_rs256(${lit(f.t['badSig']!)}, ${lit(f.k.rsa.pem)})`,
    want: 'undefined',
  },
  {
    name: 'verify two-part token',
    expr: (f) => `io.jwt.verify_rs256(${lit(f.t['twoParts']!)}, ${lit(f.k.rsa.pem)})`,
    want: 'undefined',
  },
  {
    name: 'verify no separators',
    expr: (f) => `io.jwt.verify_rs256("abc", ${lit(f.k.rsa.pem)})`,
    want: 'undefined',
  },
  {
    name: 'verify bad header',
    expr: (f) => `io.jwt.verify_rs256(${lit(f.t['badHeader']!)}, ${lit(f.k.rsa.pem)})`,
    want: 'undefined',
  },
  {
    name: 'verify garbage key',
    expr: (f) => `io.jwt.verify_rs256(${lit(f.t['RS256']!)}, "not a key")`,
    want: 'undefined',
  },
  {
    name: 'verify pem with trailing data',
    expr: (f) => `io.jwt.verify_rs256(${lit(f.t['RS256']!)}, ${lit(`${f.k.rsa.pem}trailing`)})`,
    want: 'undefined',
  },
  {
    name: 'verify pem with leading text',
    expr: (f) => `io.jwt.verify_rs256(${lit(f.t['RS256']!)}, ${lit(`a key:\n${f.k.rsa.pem}`)})`,
  },
  {
    name: 'verify pkcs1 pem type',
    expr: (f) =>
      `io.jwt.verify_rs256(${lit(f.t['RS256']!)}, ${lit(f.k.rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }).toString())})`,
    want: 'undefined',
  },
  {
    name: 'verify jwks any key',
    expr: (f) =>
      `io.jwt.verify_rs256(${lit(f.t['RS256']!)}, ${lit(JSON.stringify({ keys: [f.k.rsa2.jwk, f.k.rsa.jwk] }))})`,
    want: 'true',
  },
  {
    name: 'verify jwks kid selects the wrong key',
    expr: (f) =>
      `io.jwt.verify_rs256(${lit(f.t['RS256kid1']!)}, ${lit(
        JSON.stringify({
          keys: [
            { ...f.k.rsa2.jwk, kid: 'k1' },
            { ...f.k.rsa.jwk, kid: 'k2' },
          ],
        }),
      )})`,
    want: 'false',
  },
  {
    name: 'verify jwks kid selects the right key',
    expr: (f) =>
      `io.jwt.verify_rs256(${lit(f.t['RS256kid2']!)}, ${lit(
        JSON.stringify({
          keys: [
            { ...f.k.rsa2.jwk, kid: 'k1' },
            { ...f.k.rsa.jwk, kid: 'k2' },
          ],
        }),
      )})`,
    want: 'true',
  },
  {
    name: 'verify jwks alg mismatch skips key',
    expr: (f) =>
      `io.jwt.verify_rs256(${lit(f.t['RS256']!)}, ${lit(JSON.stringify({ keys: [{ ...f.k.rsa.jwk, alg: 'RS512' }] }))})`,
    want: 'false',
  },
  {
    name: 'verify jwks unknown alg is ignored',
    expr: (f) =>
      `io.jwt.verify_rs256(${lit(f.t['RS256']!)}, ${lit(JSON.stringify({ keys: [{ ...f.k.rsa.jwk, alg: 'RSA-OAEP' }] }))})`,
    want: 'false',
  },
];

const decodeCases: CaseDef[] = [
  { name: 'decode rs256', expr: (f) => `io.jwt.decode(${lit(f.t['RS256']!)})`, want: 'defined' },
  { name: 'decode es512', expr: (f) => `io.jwt.decode(${lit(f.t['ES512']!)})`, want: 'defined' },
  {
    name: 'decode big integers exactly',
    expr: (f) => `io.jwt.decode(${lit(f.t['bigInt']!)})`,
    want: 'defined',
  },
  { name: 'decode nested cty JWT', expr: (f) => `io.jwt.decode(${lit(f.t['nested']!)})`, want: 'defined' },
  {
    name: 'decode payload not an object',
    expr: (f) => `io.jwt.decode(${lit(f.t['arrayPayload']!)})`,
    want: 'undefined',
  },
  { name: 'decode JWE', expr: (f) => `io.jwt.decode(${lit(f.t['jwe']!)})`, want: 'undefined' },
  { name: 'decode bad header', expr: (f) => `io.jwt.decode(${lit(f.t['badHeader']!)})`, want: 'undefined' },
  {
    name: 'decode bad signature encoding',
    expr: (f) => `io.jwt.decode(${lit(f.t['badSig']!)})`,
    want: 'undefined',
  },
  { name: 'decode two parts', expr: (f) => `io.jwt.decode(${lit(f.t['twoParts']!)})`, want: 'undefined' },
  { name: 'decode no header alg', expr: (f) => `io.jwt.decode(${lit(f.t['noAlg']!)})`, want: 'defined' },
  { name: 'decode empty string', expr: () => `io.jwt.decode("")`, want: 'undefined' },
];

const dv = (tok: string, constraints: Record<string, unknown> | string): string =>
  `io.jwt.decode_verify(${lit(tok)}, ${typeof constraints === 'string' ? constraints : JSON.stringify(constraints)})`;

const decodeVerifyCases: CaseDef[] = [
  { name: 'dv secret', expr: (f) => dv(f.t['HS256']!, { secret: SECRET, aud: 'svc' }), want: 'defined' },
  { name: 'dv secret hs512', expr: (f) => dv(f.t['HS512']!, { secret: SECRET, aud: 'svc' }) },
  { name: 'dv wrong secret', expr: (f) => dv(f.t['HS256']!, { secret: 'nope', aud: 'svc' }) },
  { name: 'dv pem rs256', expr: (f) => dv(f.t['RS256']!, { cert: f.k.rsa.pem, aud: 'svc' }) },
  { name: 'dv cert ps384', expr: (f) => dv(f.t['PS384']!, { cert: f.k.rsaCert, aud: 'svc' }) },
  { name: 'dv cert es256', expr: (f) => dv(f.t['ES256']!, { cert: f.k.p256Cert, aud: 'svc' }) },
  { name: 'dv jwk es384', expr: (f) => dv(f.t['ES384']!, { cert: f.jwk(f.k.p384), aud: 'svc' }) },
  { name: 'dv jwk eddsa', expr: (f) => dv(f.t['EdDSA']!, { cert: f.jwk(f.k.ed25519), aud: 'svc' }) },
  {
    name: 'dv jwks kid',
    expr: (f) =>
      dv(f.t['RS256kid2']!, {
        cert: JSON.stringify({
          keys: [
            { ...f.k.rsa2.jwk, kid: 'k1' },
            { ...f.k.rsa.jwk, kid: 'k2' },
          ],
        }),
        aud: 'svc',
      }),
  },
  {
    name: 'dv oct jwk as cert',
    expr: (f) => dv(f.t['HS256']!, { cert: JSON.stringify({ kty: 'oct', k: b64url(SECRET) }), aud: 'svc' }),
  },
  { name: 'dv rs256 token with secret', expr: (f) => dv(f.t['RS256']!, { secret: SECRET, aud: 'svc' }) },
  { name: 'dv hs256 token with cert', expr: (f) => dv(f.t['HS256']!, { cert: f.k.rsa.pem, aud: 'svc' }) },
  {
    name: 'dv alg constraint matches',
    expr: (f) => dv(f.t['HS256']!, { secret: SECRET, aud: 'svc', alg: 'HS256' }),
  },
  {
    name: 'dv alg constraint differs',
    expr: (f) => dv(f.t['HS256']!, { secret: SECRET, aud: 'svc', alg: 'HS384' }),
  },
  {
    name: 'dv iss matches',
    expr: (f) => dv(f.t['HS256']!, { secret: SECRET, aud: 'svc', iss: 'https://issuer.example' }),
  },
  {
    name: 'dv iss differs',
    expr: (f) => dv(f.t['HS256']!, { secret: SECRET, aud: 'svc', iss: 'https://other.example' }),
  },
  {
    name: 'dv iss required but absent',
    expr: (f) => dv(f.t['noClaims']!, { secret: SECRET, iss: 'https://issuer.example' }),
  },
  { name: 'dv aud missing constraint', expr: (f) => dv(f.t['HS256']!, { secret: SECRET }) },
  { name: 'dv aud differs', expr: (f) => dv(f.t['HS256']!, { secret: SECRET, aud: 'other-svc' }) },
  { name: 'dv aud list contains', expr: (f) => dv(f.t['audList']!, { secret: SECRET, aud: 'svc' }) },
  { name: 'dv aud list lacks', expr: (f) => dv(f.t['audList']!, { secret: SECRET, aud: 'nope' }) },
  {
    name: 'dv aud constraint but none in token',
    expr: (f) => dv(f.t['noAud']!, { secret: SECRET, aud: 'svc' }),
  },
  { name: 'dv no aud anywhere', expr: (f) => dv(f.t['noAud']!, { secret: SECRET }) },
  { name: 'dv expired now', expr: (f) => dv(f.t['expired']!, { secret: SECRET, aud: 'svc' }) },
  {
    name: 'dv expired but time before exp',
    expr: (f) => dv(f.t['expired']!, { secret: SECRET, aud: 'svc', time: 999999999000000000 }),
  },
  {
    name: 'dv time equals exp',
    expr: (f) => dv(f.t['expired']!, { secret: SECRET, aud: 'svc', time: 1000000000000000000 }),
  },
  { name: 'dv nbf in future', expr: (f) => dv(f.t['notYet']!, { secret: SECRET, aud: 'svc' }) },
  {
    name: 'dv time equals nbf',
    expr: (f) => dv(f.t['notYet']!, { secret: SECRET, aud: 'svc', time: 4000000000000000000 }),
  },
  {
    name: 'dv time before nbf',
    expr: (f) => dv(f.t['HS256']!, { secret: SECRET, aud: 'svc', time: 1400000000000000000 }),
  },
  { name: 'dv exp not a number', expr: (f) => dv(f.t['expString']!, { secret: SECRET }), want: 'undefined' },
  { name: 'dv nested token', expr: (f) => dv(f.t['nested']!, { secret: SECRET, aud: 'svc' }) },
  { name: 'dv crit unknown', expr: (f) => dv(f.t['critUnknown']!, { secret: SECRET, aud: 'svc' }) },
  { name: 'dv crit known', expr: (f) => dv(f.t['critKnown']!, { secret: SECRET, aud: 'svc' }) },
  { name: 'dv no alg header', expr: (f) => dv(f.t['noAlg']!, { secret: SECRET, aud: 'svc' }) },
  { name: 'dv tampered', expr: (f) => dv(f.t['tampered']!, { cert: f.k.rsa.pem, aud: 'svc' }) },
  { name: 'dv no key constraint', expr: (f) => dv(f.t['HS256']!, { aud: 'svc' }), want: 'undefined' },
  {
    name: 'dv two key constraints',
    expr: (f) => dv(f.t['HS256']!, { secret: SECRET, cert: f.k.rsa.pem }),
    want: 'undefined',
  },
  {
    name: 'dv unknown constraint',
    expr: (f) => dv(f.t['HS256']!, { secret: SECRET, foo: 1 }),
    want: 'undefined',
  },
  {
    name: 'dv negative time',
    expr: (f) => dv(f.t['HS256']!, { secret: SECRET, time: -1 }),
    want: 'undefined',
  },
  { name: 'dv cert not a key', expr: (f) => dv(f.t['HS256']!, { cert: 'garbage' }), want: 'undefined' },
  { name: 'dv malformed token', expr: () => dv('abc', { secret: SECRET }), want: 'undefined' },
  { name: 'dv JWE', expr: (f) => dv(f.t['jwe']!, { secret: SECRET }), want: 'undefined' },
];

const all = [...verifyCases, ...decodeCases, ...decodeVerifyCases];

describe('io.jwt.* builtins match opa eval', () => {
  let outcomes: Map<string, DiffOutcome>;

  beforeAll(async () => {
    const f = await fixture();
    const cases: DiffCase[] = all.map((c) => ({ name: c.name, expr: c.expr(f) }));
    outcomes = await differential(cases);
  });

  it.each(all)('$name', ({ name, want }) => {
    const { opa, wasm } = outcomes.get(name)!;
    expect(wasm).toEqual(opa);
    if (want === 'true') expect(opa).toBe(true);
    if (want === 'false') expect(opa).toBe(false);
    if (want === 'undefined') expect(opa).toBeUndefined();
    if (want === 'defined') expect(opa).toBeDefined();
  });
});
