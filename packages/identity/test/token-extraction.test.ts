// Token locations: Istio's defaults, each rule option, Envoy's prefix handling, and duplicates.
import { describe, expect, it } from 'vitest';
import { headerToken, RuleScope, type TokenRequest } from '../src/token-extraction.ts';
import { rule, rules } from './support/tokens.ts';

const T = 'aaa.bbb.ccc';
const U = 'ddd.eee.fff';

const defaults = new RuleScope([rule({ issuer: 'https://default.example' })]);
const custom = new RuleScope([
  rule({
    issuer: 'https://custom.example',
    fromHeaders: [{ name: 'X-Jwt', prefix: 'Token ' }, { name: 'x-raw' }],
    fromParams: ['my_token'],
    fromCookies: ['auth'],
  }),
]);

function tokens(scope: RuleScope, request: TokenRequest): [string, string[]][] {
  return scope
    .extract(request)
    .map((f) => [
      f.token,
      f.locations.map(
        (l) => `${l.kind}:${l.name}${l.kind === 'header' && l.prefix ? `(${l.prefix.trim()})` : ''}`,
      ),
    ]);
}

describe('RuleScope.extract with Istio default locations', () => {
  it.each<[string, TokenRequest, [string, string[]][]]>([
    ['no token', { headers: { host: 'a' } }, []],
    [
      'Authorization: Bearer',
      { headers: { authorization: `Bearer ${T}` } },
      [[T, ['header:authorization(Bearer)']]],
    ],
    [
      'header names in any case',
      { headers: { AUTHORIZATION: `Bearer ${T}` } },
      [[T, ['header:authorization(Bearer)']]],
    ],
    ['Basic credentials (no token)', { headers: { authorization: 'Basic dXNlcjpwYXNz' } }, []],
    [
      'a lower-case scheme (Envoy matches "Bearer " case-sensitively)',
      { headers: { authorization: `bearer ${T}` } },
      [],
    ],
    [
      'extra spaces after the scheme',
      { headers: { authorization: `Bearer    ${T}` } },
      [[T, ['header:authorization(Bearer)']]],
    ],
    [
      'the prefix later in the value',
      { headers: { authorization: `Foo, Bearer ${T}` } },
      [[T, ['header:authorization(Bearer)']]],
    ],
    [
      'a bare "Bearer " (handed on whole, to fail)',
      { headers: { authorization: 'Bearer ' } },
      [['Bearer ', ['header:authorization(Bearer)']]],
    ],
    [
      'access_token in a raw query',
      { headers: {}, query: `a=1&access_token=${T}` },
      [[T, ['param:access_token']]],
    ],
    [
      'access_token with a leading "?"',
      { headers: {}, query: `?access_token=${T}` },
      [[T, ['param:access_token']]],
    ],
    [
      'access_token in URLSearchParams',
      { headers: {}, query: new URLSearchParams({ access_token: T }) },
      [[T, ['param:access_token']]],
    ],
    ['access_token in a map', { headers: {}, query: { access_token: [T] } }, [[T, ['param:access_token']]]],
    ['a header the default rule does not read', { headers: { 'x-jwt': `Token ${T}` } }, []],
    ['a cookie (not a default location)', { headers: { cookie: `access_token=${T}` } }, []],
    [
      'the same token in header and query (one token)',
      { headers: { authorization: `Bearer ${T}` }, query: `access_token=${T}` },
      [[T, ['header:authorization(Bearer)', 'param:access_token']]],
    ],
    [
      'different tokens in header and query',
      { headers: { authorization: `Bearer ${T}` }, query: `access_token=${U}` },
      [
        [T, ['header:authorization(Bearer)']],
        [U, ['param:access_token']],
      ],
    ],
    [
      'two Authorization values',
      { headers: { authorization: [`Bearer ${T}`, `Bearer ${U}`] } },
      [
        [T, ['header:authorization(Bearer)']],
        [U, ['header:authorization(Bearer)']],
      ],
    ],
    [
      'a repeated query parameter with different values',
      { headers: {}, query: `access_token=${T}&access_token=${U}` },
      [
        [T, ['param:access_token']],
        [U, ['param:access_token']],
      ],
    ],
  ])('%s', (_, request, expected) => {
    expect(tokens(defaults, request)).toEqual(expected);
  });
});

describe('RuleScope.extract with a rule that names its locations', () => {
  it.each<[string, TokenRequest, [string, string[]][]]>([
    [
      'Authorization is no longer read',
      { headers: { authorization: `Bearer ${T}` }, query: `access_token=${T}` },
      [],
    ],
    [
      'a header with its prefix stripped',
      { headers: { 'x-jwt': `Token ${T}` } },
      [[T, ['header:x-jwt(Token)']]],
    ],
    ['a header without the prefix (no token)', { headers: { 'x-jwt': T } }, []],
    ['a header without prefix configured', { headers: { 'X-Raw': T } }, [[T, ['header:x-raw']]]],
    [
      'an empty header without prefix (a token, to fail)',
      { headers: { 'x-raw': '' } },
      [['', ['header:x-raw']]],
    ],
    ['a query parameter', { headers: {}, query: `my_token=${T}` }, [[T, ['param:my_token']]]],
    [
      'a cookie from the Cookie header',
      { headers: { cookie: `a=1; auth=${T}; b=2` } },
      [[T, ['cookie:auth']]],
    ],
    ['a quoted cookie', { headers: { Cookie: `auth="${T}"` } }, [[T, ['cookie:auth']]]],
    [
      'a cookie from parsed cookies',
      { headers: { cookie: `auth=${U}` }, cookies: { auth: T } },
      [[T, ['cookie:auth']]],
    ],
    ['a cookie of another name', { headers: { cookie: `session=${T}` } }, []],
  ])('%s', (_, request, expected) => {
    expect(tokens(custom, request)).toEqual(expected);
  });
});

describe('RuleScope', () => {
  it('lists the rules reading each location, in declaration order', () => {
    const [a, b, c] = rules([
      { issuer: 'https://a.example' },
      { issuer: 'https://b.example', fromParams: ['access_token'] },
      { issuer: 'https://c.example', fromHeaders: [{ name: 'authorization', prefix: 'Bearer ' }] },
    ]);
    const scope = new RuleScope([a!, b!, c!]);
    const [viaHeader] = scope.extract({ headers: { authorization: `Bearer ${T}` } });
    expect(viaHeader?.rules).toEqual([a, c]);
    const [viaBoth] = scope.extract({
      headers: { authorization: `Bearer ${T}` },
      query: `access_token=${T}`,
    });
    expect(viaBoth?.rules).toEqual([a, b, c]);
  });

  it('collects the headers its rules write, for stripping', () => {
    const scope = new RuleScope(
      rules([
        { issuer: 'https://a.example', outputPayloadToHeader: 'X-Payload' },
        { issuer: 'https://b.example', outputClaimToHeaders: [{ header: 'x-sub', claim: 'sub' }] },
      ]),
    );
    expect(scope.outputHeaders).toEqual(['x-payload', 'x-sub']);
  });

  it('ignores prototype-named locations that the request does not carry', () => {
    expect(
      tokens(custom, { headers: {}, query: { __proto__: T } as unknown as Record<string, string> }),
    ).toEqual([]);
    expect(tokens(custom, { headers: {}, cookies: {} })).toEqual([]);
  });
});

describe('headerToken', () => {
  it.each<[string, string, string | undefined]>([
    [`Bearer ${T}`, 'Bearer ', T],
    [`Bearer\t${T}`, 'Bearer ', undefined],
    [`xBearer ${T}`, 'Bearer ', T],
    [`Bearer "${T}"`, 'Bearer ', `${T}"`],
    [T, '', T],
  ])('%j with prefix %j → %j', (value, prefix, expected) => {
    expect(headerToken(value, prefix)).toBe(expected);
  });
});
