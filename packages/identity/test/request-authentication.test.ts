// Parsing and validation of RequestAuthentication resources: every field, and errors that name the path.
import { describe, expect, it } from 'vitest';
import { InvalidResourceError } from '../src/errors.ts';
import { DEFAULT_JWT_ALGORITHMS } from '../src/jwt-algorithms.ts';
import { parseDurationMs, parseRequestAuthentication } from '../src/request-authentication.ts';

const FULL_YAML = `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: httpbin-jwt
  namespace: foo
  labels: { team: edge }
spec:
  selector:
    matchLabels:
      app: httpbin
      version: v1
  jwtRules:
  - issuer: "https://issuer.example.com"
    audiences: [bookstore_android.apps.example.com, bookstore_web.apps.example.com]
    jwksUri: https://issuer.example.com/.well-known/jwks.json
    fromHeaders:
    - name: X-Jwt-Assertion
      prefix: "Bearer "
    - name: x-goog-iap-jwt-assertion
    fromParams: [my_token]
    fromCookies: [auth-token]
    outputPayloadToHeader: X-Jwt-Payload
    outputClaimToHeaders:
    - header: X-Jwt-Group
      claim: my-group
    - header: x-jwt-nested
      claim: nested.key.group
    forwardOriginalToken: true
    timeout: 1.5s
    x-portcullis-algorithms: [RS256, ES256, RS256]
  - issuer: issuer-foo@example.com
    jwks: '{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"}]}'
`;

const minimal = (rule: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'RequestAuthentication',
  metadata: { name: 'r', namespace: 'ns' },
  spec: { jwtRules: [rule] },
  ...extra,
});

const ok = { issuer: 'https://issuer.example.com' };

function problems(input: unknown): { path: string; reason: string }[] {
  try {
    parseRequestAuthentication(input);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidResourceError);
    const invalid = error as InvalidResourceError;
    expect(invalid.code).toBe('invalid_resource');
    expect(invalid.httpStatus).toBe(400);
    return invalid.details.map((d) => ({ path: d.path, reason: d.reason }));
  }
  throw new Error('expected the resource to be rejected');
}

describe('parseRequestAuthentication', () => {
  it('reads every field of a v1 resource written in YAML', () => {
    const resource = parseRequestAuthentication(FULL_YAML);
    expect(resource.apiVersion).toBe('security.istio.io/v1');
    expect(resource.metadata).toEqual({ name: 'httpbin-jwt', namespace: 'foo' });
    expect(resource.selector).toEqual({ app: 'httpbin', version: 'v1' });
    expect(resource.jwtRules).toHaveLength(2);
    const [first, second] = resource.jwtRules;
    expect(first).toEqual({
      issuer: 'https://issuer.example.com',
      audiences: ['bookstore_android.apps.example.com', 'bookstore_web.apps.example.com'],
      jwksUri: 'https://issuer.example.com/.well-known/jwks.json',
      jwks: undefined,
      fromHeaders: [
        { name: 'x-jwt-assertion', prefix: 'Bearer ' },
        { name: 'x-goog-iap-jwt-assertion', prefix: '' },
      ],
      fromParams: ['my_token'],
      fromCookies: ['auth-token'],
      outputPayloadToHeader: 'x-jwt-payload',
      outputClaimToHeaders: [
        { header: 'x-jwt-group', claim: 'my-group' },
        { header: 'x-jwt-nested', claim: 'nested.key.group' },
      ],
      forwardOriginalToken: true,
      timeoutMs: 1500,
      algorithms: ['RS256', 'ES256'],
      origin: 'foo/httpbin-jwt#0',
    });
    expect(second).toMatchObject({
      issuer: 'issuer-foo@example.com',
      jwksUri: undefined,
      fromHeaders: [],
      fromParams: [],
      fromCookies: [],
      outputPayloadToHeader: undefined,
      outputClaimToHeaders: [],
      forwardOriginalToken: false,
      timeoutMs: 5000,
      algorithms: DEFAULT_JWT_ALGORITHMS,
      origin: 'foo/httpbin-jwt#1',
    });
  });

  const asObject = minimal({ issuer: 'https://a.example', audiences: ['x'] });
  it.each([
    ['an object', asObject],
    ['JSON text', JSON.stringify(asObject)],
    [
      'YAML text',
      `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: r, namespace: ns}
spec:
  jwtRules:
  - {issuer: "https://a.example", audiences: [x]}`,
    ],
    ['UTF-8 bytes', new TextEncoder().encode(JSON.stringify(asObject))],
    ['v1beta1', { ...asObject, apiVersion: 'security.istio.io/v1beta1' }],
  ])('accepts %s', (_, input) => {
    const resource = parseRequestAuthentication(input);
    expect(resource.jwtRules[0]).toMatchObject({ issuer: 'https://a.example', audiences: ['x'] });
  });

  it('accepts a resource without rules or selector (it applies nothing)', () => {
    const resource = parseRequestAuthentication({ ...minimal(ok), spec: {} });
    expect(resource.jwtRules).toEqual([]);
    expect(resource.selector).toBeUndefined();
  });

  it('takes the namespace from the options when metadata has none', () => {
    const input = { ...minimal(ok), metadata: { name: 'r' } };
    expect(parseRequestAuthentication(input, { defaultNamespace: 'dflt' }).metadata.namespace).toBe('dflt');
    expect(problems(input)).toEqual([{ path: 'metadata.namespace', reason: 'required' }]);
  });

  it.each<[string, unknown, string, string]>([
    ['a missing issuer', minimal({ jwksUri: 'https://k' }), 'spec.jwtRules[0].issuer', 'required'],
    ['an empty issuer', minimal({ issuer: '' }), 'spec.jwtRules[0].issuer', 'required'],
    ['a numeric issuer', minimal({ issuer: 7 }), 'spec.jwtRules[0].issuer', 'must be a string'],
    [
      'an empty audience',
      minimal({ ...ok, audiences: ['a', ''] }),
      'spec.jwtRules[0].audiences[1]',
      'non-empty',
    ],
    ['audiences as a string', minimal({ ...ok, audiences: 'a' }), 'spec.jwtRules[0].audiences', 'list'],
    ['a non-http jwksUri', minimal({ ...ok, jwksUri: 'ftp://k/jwks' }), 'spec.jwtRules[0].jwksUri', 'http'],
    ['a relative jwksUri', minimal({ ...ok, jwksUri: '/jwks' }), 'spec.jwtRules[0].jwksUri', 'absolute'],
    [
      'both jwks and jwksUri',
      minimal({ ...ok, jwksUri: 'https://k', jwks: '{"keys":[{"kty":"RSA"}]}' }),
      'spec.jwtRules[0].jwks',
      'only one of jwksUri and jwks',
    ],
    ['inline jwks that is not JSON', minimal({ ...ok, jwks: '{keys' }), 'spec.jwtRules[0].jwks', 'JSON'],
    [
      'inline jwks without keys',
      minimal({ ...ok, jwks: '{"keys":[]}' }),
      'spec.jwtRules[0].jwks',
      'at least one',
    ],
    ['inline jwks with a bad key', minimal({ ...ok, jwks: '{"keys":[{}]}' }), 'spec.jwtRules[0].jwks', 'kty'],
    [
      'an e-mail issuer with no key source',
      minimal({ issuer: 'svc@example.com' }),
      'spec.jwtRules[0].jwksUri',
      'OpenID discovery',
    ],
    [
      'a header location without name',
      minimal({ ...ok, fromHeaders: [{ prefix: 'B ' }] }),
      'spec.jwtRules[0].fromHeaders[0].name',
      'required',
    ],
    [
      'a header location as a string',
      minimal({ ...ok, fromHeaders: ['x-token'] }),
      'spec.jwtRules[0].fromHeaders[0]',
      'object',
    ],
    [
      'a header name with a space',
      minimal({ ...ok, fromHeaders: [{ name: 'x token' }] }),
      'spec.jwtRules[0].fromHeaders[0].name',
      'header name',
    ],
    [
      'a numeric prefix',
      minimal({ ...ok, fromHeaders: [{ name: 'x', prefix: 1 }] }),
      'spec.jwtRules[0].fromHeaders[0].prefix',
      'string',
    ],
    [
      'an empty query parameter',
      minimal({ ...ok, fromParams: [''] }),
      'spec.jwtRules[0].fromParams[0]',
      'non-empty',
    ],
    [
      'a bad cookie name',
      minimal({ ...ok, fromCookies: ['a b'] }),
      'spec.jwtRules[0].fromCookies[0]',
      'cookie name',
    ],
    [
      'a bad payload header',
      minimal({ ...ok, outputPayloadToHeader: 'x y' }),
      'spec.jwtRules[0].outputPayloadToHeader',
      'header name',
    ],
    [
      'a claim header without claim',
      minimal({ ...ok, outputClaimToHeaders: [{ header: 'x-a' }] }),
      'spec.jwtRules[0].outputClaimToHeaders[0].claim',
      'required',
    ],
    [
      'a pseudo-header as claim header',
      minimal({ ...ok, outputClaimToHeaders: [{ header: ':authority', claim: 'a' }] }),
      'spec.jwtRules[0].outputClaimToHeaders[0].header',
      'header name',
    ],
    [
      'a claim header written twice',
      minimal({
        ...ok,
        outputClaimToHeaders: [
          { header: 'X-A', claim: 'a' },
          { header: 'x-a', claim: 'b' },
        ],
      }),
      'spec.jwtRules[0].outputClaimToHeaders[1].header',
      'duplicate',
    ],
    [
      'a string forwardOriginalToken',
      minimal({ ...ok, forwardOriginalToken: 'yes' }),
      'spec.jwtRules[0].forwardOriginalToken',
      'boolean',
    ],
    ['a unitless timeout', minimal({ ...ok, timeout: '5' }), 'spec.jwtRules[0].timeout', 'duration'],
    ['a zero timeout', minimal({ ...ok, timeout: '0s' }), 'spec.jwtRules[0].timeout', 'at least 1ms'],
    [
      'a sub-millisecond timeout',
      minimal({ ...ok, timeout: '1.5ms' }),
      'spec.jwtRules[0].timeout',
      'millisecond precision',
    ],
    ['a numeric timeout', minimal({ ...ok, timeout: 5 }), 'spec.jwtRules[0].timeout', 'duration'],
    [
      'failureMode STRICT',
      minimal({ ...ok, failureMode: 'STRICT' }),
      'spec.jwtRules[0].failureMode',
      'not supported',
    ],
    [
      'HS256 in the allow-list',
      minimal({ ...ok, 'x-portcullis-algorithms': ['RS256', 'HS256'] }),
      'spec.jwtRules[0].x-portcullis-algorithms[1]',
      'never accepted',
    ],
    [
      'none in the allow-list',
      minimal({ ...ok, 'x-portcullis-algorithms': ['none'] }),
      'spec.jwtRules[0].x-portcullis-algorithms[0]',
      'never accepted',
    ],
    [
      'an empty allow-list',
      minimal({ ...ok, 'x-portcullis-algorithms': [] }),
      'spec.jwtRules[0].x-portcullis-algorithms',
      'at least one',
    ],
    [
      'a snake_case field',
      minimal({ ...ok, jwks_uri: 'https://k' }),
      'spec.jwtRules[0].jwks_uri',
      'unknown field',
    ],
    [
      'a rule that is not an object',
      minimal('https://issuer' as unknown as Record<string, unknown>),
      'spec.jwtRules[0]',
      'object',
    ],
    ['jwtRules that is not a list', { ...minimal(ok), spec: { jwtRules: {} } }, 'spec.jwtRules', 'list'],
    [
      'too many rules',
      { ...minimal(ok), spec: { jwtRules: Array(101).fill(ok) } },
      'spec.jwtRules',
      'at most 100',
    ],
    [
      'a gateway targetRef',
      { ...minimal(ok), spec: { targetRef: { kind: 'Gateway', name: 'g' } } },
      'spec.targetRef',
      'not supported',
    ],
    ['an unknown spec field', { ...minimal(ok), spec: { jwtRule: [] } }, 'spec.jwtRule', 'unknown field'],
    [
      'a numeric label value',
      { ...minimal(ok), spec: { selector: { matchLabels: { app: 5 } } } },
      'spec.selector.matchLabels.app',
      'string',
    ],
    [
      'a bad label name',
      { ...minimal(ok), spec: { selector: { matchLabels: { 'a b': 'x' } } } },
      'spec.selector.matchLabels["a b"]',
      'label name',
    ],
    [
      'a wildcard label value',
      { ...minimal(ok), spec: { selector: { matchLabels: { app: '*' } } } },
      'spec.selector.matchLabels.app',
      'label value',
    ],
    [
      'another apiVersion',
      { ...minimal(ok), apiVersion: 'security.istio.io/v1alpha1' },
      'apiVersion',
      'must be one of',
    ],
    ['another kind', { ...minimal(ok), kind: 'PeerAuthentication' }, 'kind', 'RequestAuthentication'],
    ['no metadata', { ...minimal(ok), metadata: undefined }, 'metadata', 'required'],
    [
      'an upper-case name',
      { ...minimal(ok), metadata: { name: 'Auth', namespace: 'ns' } },
      'metadata.name',
      'DNS',
    ],
    [
      'a namespace with dots',
      { ...minimal(ok), metadata: { name: 'a', namespace: 'a.b' } },
      'metadata.namespace',
      'DNS label',
    ],
    ['a list document', [], '', 'must be an object'],
  ])('rejects %s', (_, input, path, reason) => {
    const found = problems(input);
    expect(found).toContainEqual({ path, reason: expect.stringContaining(reason) });
  });

  it('reports every problem at once, and names each in the message', () => {
    const found = problems(minimal({ audiences: [''], timeout: 'soon', extra: 1 }, { kind: 'Nope' }));
    expect(found.map((p) => p.path)).toEqual([
      'kind',
      'spec.jwtRules[0].extra',
      'spec.jwtRules[0].issuer',
      'spec.jwtRules[0].audiences[0]',
      'spec.jwtRules[0].timeout',
    ]);
    try {
      parseRequestAuthentication(minimal({ audiences: [''] }));
    } catch (error) {
      expect((error as Error).message).toBe(
        'spec.jwtRules[0].issuer: required; spec.jwtRules[0].audiences[0]: must be a non-empty string',
      );
    }
  });

  it.each([
    ['a YAML syntax error', 'kind: x\nspec: [unclosed', 'line 3'],
    ['duplicate keys', 'kind: A\nkind: B\n', 'duplicated mapping key'],
    ['invalid UTF-8', new Uint8Array([0x6b, 0x3a, 0xff, 0xfe]), 'UTF-8'],
  ])('rejects %s with a document-level problem', (_, input, reason) => {
    expect(problems(input)).toEqual([{ path: '', reason: expect.stringContaining(reason) }]);
  });

  it('refuses text above the size limit before parsing it', () => {
    const big = `# ${'x'.repeat(300 * 1024)}\n`;
    expect(problems(big)).toEqual([{ path: '', reason: expect.stringContaining('the limit is 262144') }]);
    expect(() => parseRequestAuthentication(JSON.stringify(minimal(ok)), { maxBytes: 10 })).toThrow(
      /limit is 10/,
    );
  });

  it('stays linear on YAML whose aliases repeat one node many times', () => {
    const anchors = ['a: &a ["x"]'];
    const yamlText = `${anchors[0]}\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: r, namespace: ns}\nspec:\n  jwtRules: [${Array(1000).fill('*a').join(',')}]\n`;
    const found = problems(yamlText);
    expect(found).toContainEqual({ path: 'spec.jwtRules', reason: 'at most 100 rules' });
  });
});

describe('parseDurationMs', () => {
  it.each<[string, number | string]>([
    ['5s', 5000],
    ['1.5s', 1500],
    ['250ms', 250],
    ['1m30s', 90_000],
    ['1h', 3_600_000],
    ['.5s', 500],
    ['1000000us', 1000],
    ['2h', 'must be at most 1h'],
    ['0.5ms', 'only millisecond precision is supported'],
    ['1', 'must be a duration such as "5s", "1.5s" or "250ms"'],
    ['-1s', 'must be a duration such as "5s", "1.5s" or "250ms"'],
    ['5 s', 'must be a duration such as "5s", "1.5s" or "250ms"'],
  ])('%s → %s', (text, expected) => {
    expect(parseDurationMs(text)).toBe(expected);
  });
});
