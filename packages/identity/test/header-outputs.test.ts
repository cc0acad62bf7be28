// Upstream header mutations: payload and claim outputs as Envoy renders them, token forwarding and stripping.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  claimHeaderValue,
  formatClaimNumber,
  removeQueryParams,
  upstreamHeaderMutations,
} from '../src/header-outputs.ts';
import { JwksCache } from '../src/jwks-cache.ts';
import { type AuthenticatedOutcome, JwtAuthenticator } from '../src/jwt-authenticator.ts';
import { RuleScope, type TokenRequest } from '../src/token-extraction.ts';
import { jwksOf, makeKey, rule, sign, type TestKey } from './support/tokens.ts';

const ISS = 'https://issuer.example';
let key: TestKey;
let jwks: string;
const authenticator = new JwtAuthenticator({ jwks: new JwksCache() });

beforeAll(async () => {
  key = await makeKey('ES256', 'k');
  jwks = JSON.stringify(jwksOf(key));
});

async function authenticate(ruleFields: Record<string, unknown>, request: (token: string) => TokenRequest) {
  const token = await sign(key, {
    iss: ISS,
    sub: 'alice',
    exp: Math.floor(Date.now() / 1000) + 600,
    group: 'admins',
    level: 3,
    ratio: 0.25,
    admin: true,
    roles: ['a', 'b'],
    nested: { key: { group: 'ops' } },
    empty: '',
  });
  const scope = new RuleScope([rule({ issuer: ISS, jwks, ...ruleFields })]);
  return { token, outcome: await authenticator.authenticate(request(token), scope) };
}

describe('upstreamHeaderMutations', () => {
  it('forwards the payload segment and claims, strips forgeable copies and removes the token header', async () => {
    const { token, outcome } = await authenticate(
      {
        outputPayloadToHeader: 'X-Jwt-Payload',
        outputClaimToHeaders: [
          { header: 'x-group', claim: 'group' },
          { header: 'x-level', claim: 'level' },
          { header: 'x-ratio', claim: 'ratio' },
          { header: 'x-admin', claim: 'admin' },
          { header: 'x-roles', claim: 'roles' },
          { header: 'x-nested', claim: 'nested.key.group' },
          { header: 'x-missing', claim: 'nope' },
          { header: 'x-empty', claim: 'empty' },
        ],
      },
      (t) => ({ headers: { authorization: `Bearer ${t}` } }),
    );
    const payloadSegment = token.split('.')[1]!;
    expect(upstreamHeaderMutations(outcome)).toEqual({
      set: [
        ['x-jwt-payload', payloadSegment],
        ['x-group', 'admins'],
        ['x-level', '3'],
        ['x-ratio', '0.250000'],
        ['x-admin', 'true'],
        ['x-roles', Buffer.from('["a","b"]').toString('base64')],
        ['x-nested', 'ops'],
      ],
      remove: ['x-missing', 'x-empty', 'authorization'],
      removeQueryParams: [],
    });
    expect(JSON.parse(Buffer.from(payloadSegment, 'base64url').toString())).toMatchObject({ sub: 'alice' });
  });

  it.each<
    [
      string,
      Record<string, unknown>,
      (t: string) => TokenRequest,
      { remove: string[]; removeQueryParams: string[] },
    ]
  >([
    [
      'a forwarded header token',
      { forwardOriginalToken: true },
      (t) => ({ headers: { authorization: `Bearer ${t}` } }),
      { remove: [], removeQueryParams: [] },
    ],
    [
      'a query token',
      {},
      (t) => ({ headers: {}, query: `access_token=${t}` }),
      { remove: [], removeQueryParams: ['access_token'] },
    ],
    [
      'a forwarded query token',
      { forwardOriginalToken: true },
      (t) => ({ headers: {}, query: `access_token=${t}` }),
      { remove: [], removeQueryParams: [] },
    ],
    [
      'a token in header and query',
      {},
      (t) => ({ headers: { authorization: `Bearer ${t}` }, query: { access_token: t } }),
      { remove: ['authorization'], removeQueryParams: ['access_token'] },
    ],
    [
      'a cookie token (Envoy leaves cookies alone)',
      { fromCookies: ['session'] },
      (t) => ({ headers: { cookie: `session=${t}` } }),
      { remove: [], removeQueryParams: [] },
    ],
    [
      'a custom header token',
      { fromHeaders: [{ name: 'X-Token' }] },
      (t) => ({ headers: { 'x-token': t } }),
      { remove: ['x-token'], removeQueryParams: [] },
    ],
  ])('handles %s', async (_, fields, request, expected) => {
    const { outcome } = await authenticate(fields, request);
    expect(upstreamHeaderMutations(outcome)).toEqual({ set: [], ...expected });
  });

  it('strips client-sent output headers from anonymous requests too', async () => {
    const { outcome } = await authenticate(
      { outputPayloadToHeader: 'x-jwt-payload', outputClaimToHeaders: [{ header: 'x-user', claim: 'sub' }] },
      () => ({ headers: { 'x-user': 'forged' } }),
    );
    expect(outcome.anonymous).toBe(true);
    expect(upstreamHeaderMutations(outcome)).toEqual({
      set: [],
      remove: ['x-jwt-payload', 'x-user'],
      removeQueryParams: [],
    });
  });
});

describe('claimHeaderValue', () => {
  const claims = {
    s: 'text',
    empty: '',
    n: 42,
    f: -1.5,
    t: true,
    f0: false,
    nil: null,
    list: ['a', 1],
    obj: { k: 'v' },
    nested: { a: { b: 'deep' }, list: [{ b: 'x' }] },
    'dotted.name': 'unreachable',
    crlf: 'a\r\nx-injected: 1',
    tab: 'a\tb',
  };
  it.each<[string, string | undefined]>([
    ['s', 'text'],
    ['empty', undefined],
    ['n', '42'],
    ['f', '-1.500000'],
    ['t', 'true'],
    ['f0', 'false'],
    ['nil', undefined],
    ['list', Buffer.from('["a",1]').toString('base64')],
    ['obj', Buffer.from('{"k":"v"}').toString('base64')],
    ['nested.a.b', 'deep'],
    ['nested.a', Buffer.from('{"b":"deep"}').toString('base64')],
    ['nested.list.0.b', undefined],
    ['dotted.name', undefined],
    ['missing', undefined],
    ['constructor', undefined],
    ['__proto__', undefined],
    ['s.length', undefined],
    ['crlf', undefined],
    ['tab', 'a\tb'],
  ])('%s → %j', (path, expected) => {
    expect(claimHeaderValue(claims, path)).toBe(expected);
  });
});

describe('formatClaimNumber (Envoy convertClaimDoubleToString)', () => {
  it.each<[number, string]>([
    [0, '0'],
    [-0, '0'],
    [42, '42'],
    [1_700_000_000, '1700000000'],
    [2 ** 53 + 2, '9007199254740994'],
    [2 ** 64 - 2048, '18446744073709549568'],
    [2 ** 64, '18446744073709551616.000000'],
    [1e21, '1000000000000000000000.000000'],
    [-3, '-3.000000'],
    [1.5, '1.500000'],
    [0.1, '0.100000'],
    [123456789.123, '123456789.123000'],
    [1 / 3, '0.333333'],
    [2 / 3, '0.666667'],
    [1 / 128, '0.007812'],
    [3 / 128, '0.023438'],
    [-1e-7, '-0.000000'],
    [5e-324, '0.000000'],
  ])('%d → %s', (value, expected) => {
    expect(formatClaimNumber(value)).toBe(expected);
  });
});

describe('removeQueryParams', () => {
  it.each<[string, string[], string]>([
    ['/p?access_token=t', ['access_token'], '/p'],
    ['/p?a=1&access_token=t&b=2', ['access_token'], '/p?a=1&b=2'],
    ['/p?access_token=t&access_token=u&a=%20x', ['access_token'], '/p?a=%20x'],
    ['/p?access%5Ftoken=t&a=1#frag', ['access_token'], '/p?a=1#frag'],
    ['/p?a=1', [], '/p?a=1'],
    ['/p', ['access_token'], '/p'],
    ['/p?%E0%A4%A=1&b=2', ['b'], '/p?%E0%A4%A=1'],
  ])('%s without %j → %s', (path, names, expected) => {
    expect(removeQueryParams(path, names)).toBe(expected);
  });
});

it('lets authenticated outcomes carry their rule for outputs', async () => {
  const { outcome } = await authenticate({}, (t) => ({ headers: { authorization: `Bearer ${t}` } }));
  expect((outcome as AuthenticatedOutcome).rule.issuer).toBe(ISS);
});
