// The CheckRequest → input mapping, against OPA-Envoy's documented input and its own test cases, plus hostile requests.
import { describe, expect, it } from 'vitest';
import {
  type CheckRequest,
  checkRequestToInput,
  type EnvoyAuthzInput,
  type InputOptions,
  RequestParseError,
} from '../src/index.ts';
import { overTheWire } from './grpc-harness.ts';

function withPath(path: string): CheckRequest {
  return overTheWire({ attributes: { request: { http: { path } } } });
}

function withBody(headers: Record<string, string>, body: string, rawBody?: Uint8Array): CheckRequest {
  return overTheWire({
    attributes: { request: { http: { headers, body, ...(rawBody ? { raw_body: rawBody } : {}) } } },
  });
}

function input(request: unknown, options?: InputOptions): EnvoyAuthzInput {
  const result = checkRequestToInput(request, options);
  if (!result.ok) throw result.error;
  return result.input;
}

function httpHeaders(result: EnvoyAuthzInput): Record<string, string> {
  const request = result.attributes?.['request'] as
    | { http?: { headers?: Record<string, string> } }
    | undefined;
  return request?.http?.headers ?? {};
}

function parseError(request: unknown, options?: InputOptions): RequestParseError {
  const result = checkRequestToInput(request, options);
  if (result.ok) throw new Error(`expected a parse error, got ${JSON.stringify(result.input)}`);
  return result.error;
}

describe('the input document', () => {
  it("matches OPA-Envoy's documented v3 example input", () => {
    // The primer's "Example v3 Input", sent as Envoy sends it. Its `request.time` reads
    // "2020-11-20T09:47:47.722473Z" in the docs, but the plugin (protomap, since v1.1) gives the
    // Timestamp message's fields, as we do.
    const request = overTheWire({
      attributes: {
        source: { address: { socket_address: { address: '172.17.0.1', port_value: 61402 } } },
        destination: { address: { socket_address: { address: '172.17.06', port_value: 8000 } } },
        request: {
          time: { seconds: 1605865667, nanos: 722473000 },
          http: {
            id: '13519049518330544501',
            method: 'POST',
            headers: {
              ':authority': '192.168.99.206:30164',
              ':method': 'POST',
              ':path': '/people?lang=en',
              accept: '*/*',
              authorization: 'Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.x',
              'content-length': '41',
              'content-type': 'application/json',
              'user-agent': 'curl/7.54.0',
              'x-forwarded-proto': 'http',
              'x-request-id': '7bca5c86-bf55-432c-b212-8c0f1dc999ec',
            },
            host: '192.168.99.206:30164',
            path: '/people?lang=en',
            protocol: 'HTTP/1.1',
            body: '{"firstname":"Charlie", "lastname":"Opa"}',
            size: 41,
          },
        },
        metadata_context: {},
      },
    });
    expect(input(request)).toEqual({
      attributes: {
        source: { address: { socketAddress: { address: '172.17.0.1', portValue: 61402 } } },
        destination: { address: { socketAddress: { address: '172.17.06', portValue: 8000 } } },
        request: {
          time: { seconds: 1605865667, nanos: 722473000 },
          http: {
            id: '13519049518330544501',
            method: 'POST',
            headers: {
              ':authority': '192.168.99.206:30164',
              ':method': 'POST',
              ':path': '/people?lang=en',
              accept: '*/*',
              authorization: 'Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.x',
              'content-length': '41',
              'content-type': 'application/json',
              'user-agent': 'curl/7.54.0',
              'x-forwarded-proto': 'http',
              'x-request-id': '7bca5c86-bf55-432c-b212-8c0f1dc999ec',
            },
            host: '192.168.99.206:30164',
            path: '/people?lang=en',
            protocol: 'HTTP/1.1',
            body: '{"firstname":"Charlie", "lastname":"Opa"}',
            size: 41,
          },
        },
        metadataContext: {},
      },
      parsed_body: { firstname: 'Charlie', lastname: 'Opa' },
      parsed_path: ['people'],
      parsed_query: { lang: ['en'] },
      truncated_body: false,
      version: { encoding: 'protojson', ext_authz: 'v3' },
    });
  });

  it("encodes attributes as OPA-Envoy's protomap does (its own test's request, and the other field kinds)", () => {
    const request = overTheWire({
      attributes: {
        source: {
          address: { socket_address: { address: '127.0.0.1' } },
          service: 'dummy',
          labels: { foo: 'bar' },
          principal: 'spiffe://cluster.local/ns/default/sa/client',
        },
        metadata_context: {
          filter_metadata: {
            dummy: { fields: { hello: { stringValue: 'world' }, count: { numberValue: 1 } } },
          },
          typed_filter_metadata: {
            typed: { type_url: 'type.googleapis.com/google.protobuf.Empty', value: Buffer.from([1, 2]) },
          },
        },
        context_extensions: { hello: 'world' },
        request: {
          http: {
            id: '13359530607844510314',
            method: 'GET',
            headers: { ':authority': '192.168.99.100:31380', accept: '*/*' },
            path: '/api/v1/products',
            host: '192.168.99.100:31380',
            protocol: 'HTTP/1.1',
            raw_body: Buffer.from('hi'),
            header_map: { headers: [{ key: 'x-raw', raw_value: Buffer.from([0xff]) }] },
          },
        },
        tls_session: { sni: 'example.com' },
        route_metadata_context: {
          filter_metadata: {
            route: {
              fields: {
                list: { listValue: { values: [{ boolValue: true }, { nullValue: 'NULL_VALUE' }] } },
                nested: { structValue: { fields: { n: { numberValue: 2.5 } } } },
              },
            },
          },
        },
      },
    });
    expect(input(request).attributes).toEqual({
      source: {
        service: 'dummy',
        labels: { foo: 'bar' },
        principal: 'spiffe://cluster.local/ns/default/sa/client',
        address: { socketAddress: { address: '127.0.0.1' } },
      },
      metadataContext: {
        filterMetadata: { dummy: { hello: 'world', count: 1 } },
        typedFilterMetadata: {
          typed: { typeUrl: 'type.googleapis.com/google.protobuf.Empty', value: 'AQI=' },
        },
      },
      contextExtensions: { hello: 'world' },
      request: {
        http: {
          id: '13359530607844510314',
          method: 'GET',
          headers: { ':authority': '192.168.99.100:31380', accept: '*/*' },
          path: '/api/v1/products',
          host: '192.168.99.100:31380',
          protocol: 'HTTP/1.1',
          rawBody: 'aGk=',
          headerMap: { headers: [{ key: 'x-raw', rawValue: '/w==' }] },
        },
      },
      tlsSession: { sni: 'example.com' },
      routeMetadataContext: { filterMetadata: { route: { list: [true, null], nested: { n: 2.5 } } } },
    });
  });

  it.each([
    ['set with a zero value (oneof member)', { port_value: 0 }, { portValue: 0 }],
    ['a named port', { named_port: 'http' }, { namedPort: 'http' }],
    ['an enum other than its zero', { protocol: 'UDP', address: 'a' }, { protocol: 1, address: 'a' }],
    ['zero scalars left out', { protocol: 'TCP', address: '', ipv4_compat: false }, undefined],
  ])('socket address %s', (_name, socketAddress, expected) => {
    const request = overTheWire({ attributes: { source: { address: { socket_address: socketAddress } } } });
    const source = input(request).attributes?.['source'] as
      | { address?: { socketAddress?: unknown } }
      | undefined;
    const socket = source?.address?.socketAddress;
    expect(socket).toEqual(expected ?? {});
  });

  it.each<[string, Record<string, string>, string | undefined]>([
    ['a principal', { principal: 'spiffe://test-domain/path' }, 'spiffe://test-domain/path'],
    ['no principal', { service: 'x' }, undefined],
  ])('source_principal with %s', (_name, source, expected) => {
    const request = overTheWire({ attributes: { source, request: { http: { path: '/' } } } });
    expect(input(request).source_principal).toBe(expected);
  });

  it('lower-cases header names, joining names that collide', () => {
    const request = overTheWire({
      attributes: {
        request: {
          http: {
            headers: { 'X-Tenant': 'a', 'x-tenant': 'b', 'Content-Type': 'application/json' },
            body: '{}',
          },
        },
      },
    });
    const result = input(request);
    expect(httpHeaders(result)).toEqual({
      'x-tenant': 'a,b',
      'content-type': 'application/json',
    });
    expect(result.parsed_body).toEqual({});
  });

  it('omits the body fields with skipRequestBodyParse, as OPA-Envoy does', () => {
    const result = input(withBody({ 'content-type': 'application/json' }, '{"a":1}'), {
      skipRequestBodyParse: true,
    });
    expect(result).not.toHaveProperty('parsed_body');
    expect(result).not.toHaveProperty('truncated_body');
  });
});

describe('parsed_path and parsed_query', () => {
  it.each<[string, string[], Record<string, string[]>]>([
    // OPA-Envoy's TestGetParsedPathAndQuery cases.
    ['/my/test/path', ['my', 'test', 'path'], {}],
    ['/my/test/path?a=1', ['my', 'test', 'path'], { a: ['1'] }],
    ['/my/test/path?a=1&a=2', ['my', 'test', 'path'], { a: ['1', '2'] }],
    ['/my/test/path?a=1&b=2', ['my', 'test', 'path'], { a: ['1'], b: ['2'] }],
    ['/my/test/path?a=1&a=new%0aline', ['my', 'test', 'path'], { a: ['1', 'new\nline'] }],
    ['%2Fmy%2Ftest%2Fpath?a=1&a=new%0aline', ['my', 'test', 'path'], { a: ['1', 'new\nline'] }],
    ['//x/people', ['x', 'people'], {}],
    ['//admin/dashboard', ['admin', 'dashboard'], {}],
    ['//x/people?a=1', ['x', 'people'], { a: ['1'] }],
    // Shapes at the edges.
    ['', [''], {}],
    ['/', [''], {}],
    ['/a/', ['a', ''], {}],
    ['/a//b', ['a', '', 'b'], {}],
    ['///', [''], {}],
    // Decoded before split: an encoded slash splits, an encoded dot-dot is a `..` segment.
    ['/a%2Fb', ['a', 'b'], {}],
    ['/a%2fb/c', ['a', 'b', 'c'], {}],
    ['/a/%2e%2e/admin', ['a', '..', 'admin'], {}],
    ['/a/../admin', ['a', '..', 'admin'], {}],
    ['/a%252Fb', ['a%2Fb'], {}],
    ['/caf%C3%A9', ['café'], {}],
    ['/%00', ['\u0000'], {}],
    // Bytes that are not UTF-8: one U+FFFD per byte, as Go renders them.
    ['/%ff', ['\uFFFD'], {}],
    ['/%E2%82/x', ['\uFFFD\uFFFD', 'x'], {}],
    ['/%C0%AF', ['\uFFFD\uFFFD'], {}],
    // `+` is a plus in the path, a space in the query.
    ['/a+b?q=a+b&r=a%2Bb', ['a+b'], { q: ['a b'], r: ['a+b'] }],
    // Only the first `?` cuts; `#` is not special.
    ['/a?b?c', ['a'], { 'b?c': [''] }],
    ['/a#frag?x=1', ['a#frag'], { x: ['1'] }],
    ['/?=x&a&b=&&c=1&&', [''], { '': ['x'], a: [''], b: [''], c: ['1'] }],
    ['/?%41=%42', [''], { A: ['B'] }],
  ])('%j', (path, parsedPath, parsedQuery) => {
    const result = input(withPath(path));
    expect(result.parsed_path).toEqual(parsedPath);
    expect(result.parsed_query).toEqual(parsedQuery);
  });

  it('keeps a `__proto__` query key as data', () => {
    const query = input(withPath('/?__proto__=x&constructor=y')).parsed_query;
    expect(Object.hasOwn(query, '__proto__')).toBe(true);
    expect(Object.getOwnPropertyDescriptor(query, '__proto__')?.value).toEqual(['x']);
    expect(Object.getPrototypeOf(query)).toBe(Object.prototype);
  });

  it.each<[string, string]>([
    ['/%zz', 'invalid URL escape "%zz"'],
    ['/a%4', 'invalid URL escape "%4"'],
    ['/a%', 'invalid URL escape "%"'],
    ['/a?b=%zz', 'invalid URL escape "%zz"'],
    ['/a?b=1;c=2', 'invalid semicolon separator in query'],
    ['/a?%=1', 'invalid URL escape "%"'],
  ])('refuses %j as OPA-Envoy does (400)', (path, message) => {
    const error = parseError(withPath(path));
    expect(error).toBeInstanceOf(RequestParseError);
    expect(error.describe()).toBe(`request_parse_error: ${message}`);
    expect(error.httpStatus).toBe(400);
  });
});

const multipartText =
  '--foo\nContent-Disposition: form-data; name="foo"\nContent-Type: text/plain\n\nbar\n--foo--\n';
const multipartWithJson =
  '--foo\nContent-Disposition: form-data; name="foo"\nContent-Type: text/plain\n\nbar\n' +
  '--foo\nContent-Disposition: form-data; name="bar"\nContent-Type: application/json;\n\n{"name": "bar"}\n--foo--\n';

describe('parsed_body and truncated_body', () => {
  it.each<[string, Record<string, string>, string, Uint8Array | undefined, unknown, boolean]>([
    // OPA-Envoy's TestGetParsedBody cases.
    ['no content type', { 'content-length': '0' }, '', undefined, null, false],
    ['text/html', { 'content-type': 'text/html' }, '', undefined, null, false],
    ['a JSON string', { 'content-type': 'application/json' }, '"foo"', undefined, 'foo', false],
    ['a JSON boolean', { 'content-type': 'application/json' }, 'true', undefined, true, false],
    ['a JSON number', { 'content-type': 'application/json' }, '42', undefined, 42, false],
    ['JSON null', { 'content-type': 'application/json' }, 'null', undefined, null, false],
    [
      'a JSON object',
      { 'content-type': 'application/json' },
      '{"firstname": "foo", "lastname": "bar"}',
      undefined,
      { firstname: 'foo', lastname: 'bar' },
      false,
    ],
    [
      'a JSON array',
      { 'content-type': 'application/json' },
      '["hello", "opa"]',
      undefined,
      ['hello', 'opa'],
      false,
    ],
    [
      'JSON escapes',
      { 'content-type': 'application/json' },
      '["\\"", "\\\\", "\\/", "/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\u0041"]',
      undefined,
      ['"', '\\', '/', '/', '\b', '\f', '\n', '\r', '\t', 'A'],
      false,
    ],
    [
      'multipart',
      { 'content-type': 'multipart/form-data; boundary=foo' },
      multipartText,
      undefined,
      { foo: ['bar'] },
      false,
    ],
    [
      'multipart with a JSON part',
      { 'content-type': 'multipart/form-data; boundary=foo' },
      multipartWithJson,
      undefined,
      { foo: ['bar'], bar: [{ name: 'bar' }] },
      false,
    ],
    ['an empty JSON body', { 'content-type': 'application/json' }, '', undefined, null, false],
    [
      'Content-Length beyond the body',
      { 'content-type': 'application/json', 'content-length': '1000' },
      'true',
      undefined,
      null,
      true,
    ],
    [
      'a form in raw_body',
      { 'content-type': 'application/x-www-form-urlencoded' },
      '',
      Buffer.from('firstname=foo&lastname=bar'),
      { firstname: ['foo'], lastname: ['bar'] },
      false,
    ],
    [
      'a form',
      { 'content-type': 'application/x-www-form-urlencoded' },
      'firstname=foo&lastname=bar',
      undefined,
      { firstname: ['foo'], lastname: ['bar'] },
      false,
    ],
    ['an empty form', { 'content-type': 'application/x-www-form-urlencoded' }, '', undefined, null, false],
    [
      'a form with a repeated key',
      { 'content-type': 'application/x-www-form-urlencoded' },
      'firstname=foo&lastname=bar&lastname=foobar',
      undefined,
      { firstname: ['foo'], lastname: ['bar', 'foobar'] },
      false,
    ],
    [
      'a truncated form',
      { 'content-type': 'application/x-www-form-urlencoded', 'content-length': '1000' },
      'firstname=foo&lastname=bar',
      undefined,
      null,
      true,
    ],
    [
      'JSON in raw_body',
      { 'content-type': 'application/json' },
      '',
      Buffer.from('{\n    "firstname": "foo",\n    "lastname": "bar"\n}'),
      { firstname: 'foo', lastname: 'bar' },
      false,
    ],
    [
      'JSON with partial-body true',
      { 'content-type': 'application/json', 'x-envoy-auth-partial-body': 'true' },
      '{"firstname": "foo"}',
      undefined,
      null,
      true,
    ],
    [
      'JSON with partial-body false',
      { 'content-type': 'application/json', 'x-envoy-auth-partial-body': 'false' },
      '{"firstname": "foo"}',
      undefined,
      { firstname: 'foo' },
      false,
    ],
    [
      'a form with partial-body true',
      { 'content-type': 'application/x-www-form-urlencoded', 'x-envoy-auth-partial-body': 'true' },
      'a=b',
      undefined,
      null,
      true,
    ],
    [
      'multipart with partial-body true',
      { 'content-type': 'multipart/form-data; boundary=foo', 'x-envoy-auth-partial-body': 'true' },
      multipartText,
      undefined,
      null,
      true,
    ],
    // Content types as OPA-Envoy matches them: by substring, case-sensitively.
    [
      'application/json; charset=utf-8',
      { 'content-type': 'application/json; charset=utf-8' },
      '{"a":1}',
      undefined,
      { a: 1 },
      false,
    ],
    [
      'application/json-patch+json',
      { 'content-type': 'application/json-patch+json' },
      '[]',
      undefined,
      [],
      false,
    ],
    [
      'application/vnd.api+json (not parsed)',
      { 'content-type': 'application/vnd.api+json' },
      '{"a":1}',
      undefined,
      null,
      false,
    ],
    [
      'Application/JSON (not parsed)',
      { 'content-type': 'Application/JSON' },
      '{"a":1}',
      undefined,
      null,
      false,
    ],
    [
      'application/grpc (no descriptors)',
      { 'content-type': 'application/grpc' },
      '',
      Buffer.from([0, 0, 0, 0, 0]),
      null,
      false,
    ],
    // Content-Length: in bytes, -1 means unknown, smaller is not truncation.
    [
      'a multi-byte body with its byte length',
      { 'content-type': 'application/json', 'content-length': '4' },
      '"é"',
      undefined,
      'é',
      false,
    ],
    [
      'Content-Length -1',
      { 'content-type': 'application/json', 'content-length': '-1' },
      '1',
      undefined,
      1,
      false,
    ],
    [
      'Content-Length smaller than the body',
      { 'content-type': 'application/json', 'content-length': '1' },
      '123',
      undefined,
      123,
      false,
    ],
    // Forms as Go parses them.
    [
      'a form with escapes and pluses',
      { 'content-type': 'application/x-www-form-urlencoded' },
      'q=a+b%21&e=',
      undefined,
      { q: ['a b!'], e: [''] },
      false,
    ],
    [
      'a multipart without a boundary',
      { 'content-type': 'multipart/form-data' },
      multipartText,
      undefined,
      null,
      false,
    ],
    [
      'multipart with CRLF, a preamble, a nameless part and a repeated name',
      { 'content-type': 'multipart/form-data; boundary="b1"' },
      'preamble\r\n--b1\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n' +
        '--b1\r\nContent-Disposition: attachment; filename="x"\r\n\r\nignored\r\n' +
        '--b1\r\ncontent-disposition: Form-Data; name=a\r\n\r\nline1\r\nline2\r\n--b1--\r\nepilogue',
      undefined,
      { a: ['1', 'line1\r\nline2'] },
      false,
    ],
    [
      'multipart whose content mentions the boundary',
      { 'content-type': 'multipart/form-data; boundary=b' },
      '--b\nContent-Disposition: form-data; name="a"\n\nx\n--bx\n--b--\n',
      undefined,
      { a: ['x\n--bx'] },
      false,
    ],
    [
      'multipart with an empty part',
      { 'content-type': 'multipart/form-data; boundary=b' },
      '--b\nContent-Disposition: form-data; name="a"\n\n--b--',
      undefined,
      { a: [''] },
      false,
    ],
  ])('%s', (_name, headers, body, rawBody, parsedBody, truncated) => {
    const result = input(withBody(headers, body, rawBody));
    expect(result.parsed_body).toEqual(parsedBody);
    expect(result.truncated_body).toBe(truncated);
  });

  it('does not parse a body over maxBodyBytes, and says it was not all looked at', () => {
    const request = withBody(
      { 'content-type': 'application/json' },
      JSON.stringify({ pad: 'x'.repeat(100) }),
    );
    expect(input(request, { maxBodyBytes: 50 })).toMatchObject({ parsed_body: null, truncated_body: true });
    expect(input(request, { maxBodyBytes: 500 }).parsed_body).toEqual({ pad: 'x'.repeat(100) });
  });

  it('decodes a raw_body that is not UTF-8 as Go would, one U+FFFD per bad byte', () => {
    const raw = Buffer.concat([Buffer.from('"a'), Buffer.from([0xe2, 0x82]), Buffer.from('b"')]);
    expect(input(withBody({ 'content-type': 'application/json' }, '', raw)).parsed_body).toBe(
      'a\uFFFD\uFFFDb',
    );
  });

  const invalidBodies: [string, Record<string, string>, string][] = [
    ['invalid JSON', { 'content-type': 'application/json' }, '{"a":'],
    ['JSON with trailing data', { 'content-type': 'application/json' }, '{} {}'],
    [
      'JSON nested past 10000 levels',
      { 'content-type': 'application/json' },
      '['.repeat(10_001) + ']'.repeat(10_001),
    ],
    ['a non-numeric Content-Length', { 'content-type': 'application/json', 'content-length': 'ten' }, '{}'],
    ['a form with a bad escape', { 'content-type': 'application/x-www-form-urlencoded' }, 'a=%zz'],
    ['a form with a semicolon', { 'content-type': 'application/x-www-form-urlencoded' }, 'a=1;b=2'],
    [
      'a malformed multipart content type',
      { 'content-type': 'multipart/form-data; boundary' },
      multipartText,
    ],
    [
      'multipart without its closing boundary',
      { 'content-type': 'multipart/form-data; boundary=foo' },
      '--foo\nContent-Disposition: form-data; name="a"\n\nbar\n',
    ],
    [
      'multipart with an invalid JSON part',
      { 'content-type': 'multipart/form-data; boundary=foo' },
      '--foo\nContent-Disposition: form-data; name="a"\nContent-Type: application/json\n\n{\n--foo--\n',
    ],
    [
      'multipart with a malformed header',
      { 'content-type': 'multipart/form-data; boundary=foo' },
      '--foo\nno colon here\n\nbar\n--foo--\n',
    ],
    [
      'multipart with garbage between parts',
      { 'content-type': 'multipart/form-data; boundary=foo' },
      '--foo\nContent-Disposition: form-data; name="a"\n\n1\n--foo junk\n--foo--\n',
    ],
  ];

  it.each(invalidBodies)('refuses %s by default (OPA-Envoy answers 400)', (_name, headers, body) => {
    const error = parseError(withBody(headers, body));
    expect(error.describe()).toMatch(/^request_parse_error: /);
  });

  it.each(invalidBodies)(
    'with onInvalidBody ignore, evaluates %s as an unparsed body',
    (_name, headers, body) => {
      expect(input(withBody(headers, body), { onInvalidBody: 'ignore' })).toMatchObject({
        parsed_body: null,
        truncated_body: false,
      });
    },
  );
});

describe('hostile requests never throw', () => {
  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['null', null],
    ['a number', 42],
    ['a string', 'GET / HTTP/1.1'],
    ['an array', [1, 2]],
    ['no attributes', {}],
    ['attributes of the wrong type', { attributes: 'x' }],
    [
      'an http request of wrong types',
      { attributes: { request: { http: { path: 42, headers: 'x', body: 5, raw_body: 'AA==' } } } },
    ],
    [
      'headers with non-string values',
      {
        attributes: {
          request: { http: { headers: { a: 1, b: null, 'content-type': ['application/json'] }, body: '{' } },
        },
      },
    ],
  ])('%s → an input with the defaults', (_name, request) => {
    expect(input(request)).toMatchObject({
      parsed_path: [''],
      parsed_query: {},
      parsed_body: null,
      truncated_body: false,
      version: { encoding: 'protojson', ext_authz: 'v3' },
    });
  });

  it('many and huge headers', () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 10_000; i++) headers[`X-Header-${i}`] = `value-${i}`;
    headers['x-huge'] = 'v'.repeat(1024 * 1024);
    const result = input(overTheWire({ attributes: { request: { http: { headers, path: '/' } } } }));
    const seen = httpHeaders(result);
    expect(Object.keys(seen)).toHaveLength(10_001);
    expect(seen['x-header-9999']).toBe('value-9999');
    expect(seen['x-huge']).toHaveLength(1024 * 1024);
  });

  it('a huge path of escapes', () => {
    const result = input(withPath(`/${'%2e'.repeat(100_000)}/x?${'a=1&'.repeat(10_000)}`));
    expect(result.parsed_path).toEqual(['.'.repeat(100_000), 'x']);
    expect(result.parsed_query['a']).toHaveLength(10_000);
  });
});
