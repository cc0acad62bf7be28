// The checks the ext-authz benchmark sends: a bookinfo request mix for the example policy (policies/envoy-authz), as Envoy would build them.
import { createHmac } from 'node:crypto';
import type { CheckRequest } from '@portcullis/envoy-authz';

const ISSUER = 'https://auth.bookinfo.example';

/** A token the example policy accepts (it decodes claims; signatures are the proxy's job). */
function jwt(sub: string, roles: string[]): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const exp = Math.floor(Date.now() / 1000) + 30 * 24 * 3600;
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: ISSUER, sub, roles, exp })}`;
  return `${unsigned}.${createHmac('sha256', 'bench').update(unsigned).digest('base64url')}`;
}

function check(method: string, path: string, headers: Record<string, string>, body?: string): CheckRequest {
  return {
    attributes: {
      source: { address: { socket_address: { address: '10.0.0.7', port_value: 51000 } } },
      destination: { address: { socket_address: { address: '10.0.0.9', port_value: 10000 } } },
      request: {
        http: {
          id: '13519049518330544501',
          method,
          path,
          host: 'bookinfo.local',
          scheme: 'http',
          protocol: 'HTTP/1.1',
          headers: {
            ':authority': 'bookinfo.local',
            ':method': method,
            ':path': path,
            ':scheme': 'http',
            accept: '*/*',
            'user-agent': 'curl/8.5.0',
            'x-forwarded-proto': 'http',
            'x-request-id': '7bca5c86-bf55-432c-b212-8c0f1dc999ec',
            ...headers,
            ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }),
          },
          ...(body === undefined ? {} : { body, size: String(Buffer.byteLength(body)) }),
        },
      },
    },
  };
}

/** Four requests, cycled: two anonymous (one allowed, one denied), a signed-in read, a reviewer's JSON post. */
export function benchRequests(): { name: string; request: CheckRequest; allowed: boolean }[] {
  return [
    { name: 'anonymous GET /productpage', request: check('GET', '/productpage', {}), allowed: true },
    { name: 'anonymous GET /api/v1/products', request: check('GET', '/api/v1/products', {}), allowed: false },
    {
      name: 'user GET /api/v1/products/2',
      request: check('GET', '/api/v1/products/2', { authorization: `Bearer ${jwt('alice', [])}` }),
      allowed: true,
    },
    {
      name: 'reviewer POST /api/v1/products/2/reviews',
      request: check(
        'POST',
        '/api/v1/products/2/reviews',
        { authorization: `Bearer ${jwt('rita', ['reviewer'])}`, 'content-type': 'application/json' },
        '{"reviewer":"rita","stars":4,"text":"Stormy, strange and lovely."}',
      ),
      allowed: true,
    },
  ];
}
