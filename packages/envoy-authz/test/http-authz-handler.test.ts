// The HTTP service mode on a real Node HTTP server: which requests are checks, the raw target and capped body they carry, and how replies go out.
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createHttpAuthzHandler,
  type DecideContext,
  type DecideFn,
  type EnvoyAuthzInput,
} from '../src/index.ts';

interface Seen {
  input: EnvoyAuthzInput;
  ctx: DecideContext;
}

let server: Server;
let base: string;
let port: number;
const seen: Seen[] = [];
let nextResult: unknown = true;
const warnings: string[][] = [];
let hold: Promise<void> | undefined;

const decide: DecideFn = async (input, ctx) => {
  seen.push({ input, ctx });
  await hold;
  return { result: nextResult, decisionId: 'dec-1' };
};

beforeAll(async () => {
  const handler = createHttpAuthzHandler({
    decide,
    onError: () => {},
    pathPrefix: '/envoy-authz',
    maxBodyBytes: 10,
    onWarnings: (w) => warnings.push(w),
  });
  server = createServer(handler.listener((_req, res) => res.writeHead(404).end('fallback')));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  port = typeof address === 'object' && address ? address.port : 0;
  base = `http://127.0.0.1:${port}`;
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});

function raw(bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(Buffer.from(bytes, 'latin1')));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('error', reject);
  });
}

const http = (s: Seen | undefined) =>
  (s?.input.attributes?.['request'] as { http: Record<string, unknown> } | undefined)?.http;

describe('createHttpAuthzHandler', () => {
  it.each<[string, string | undefined]>([
    ['/envoy-authz', '/'],
    ['/envoy-authz/', '/'],
    ['/envoy-authz?a=1', '/?a=1'],
    ['/envoy-authz/productpage?u=1', '/productpage?u=1'],
    ['/envoy-authz/envoy-authz/x', '/envoy-authz/x'],
    ['/envoy-authzx', undefined],
    ['/envoy', undefined],
    ['/healthz', undefined],
    ['/', undefined],
  ])('%s is a check of %s', async (target, path) => {
    seen.length = 0;
    const text = await raw(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(seen.length).toBe(path === undefined ? 0 : 1);
    if (path === undefined) expect(text).toMatch(/^HTTP\/1\.1 404[\s\S]*fallback/);
    else {
      expect(text).toMatch(/^HTTP\/1\.1 200/);
      expect(http(seen[0])?.path).toBe(path);
    }
  });

  it('hands the target over exactly as sent, bytes that do not decode included', async () => {
    seen.length = 0;
    await raw('GET /envoy-authz/a/%2e%2e//%ff/x?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(http(seen[0])).toMatchObject({ method: 'GET', path: '/a/%2e%2e//%ff/x?x=1' });
    expect(seen[0]?.input.parsed_path).toEqual(['a', '..', '', '\ufffd', 'x']);
  });

  it.each<[string, string, number]>([
    ['a short body whole', '"abc"', 5],
    ['a body at the limit whole', '"01234567"', 10],
    ['a longer body cut one byte past the limit, so it counts as truncated', `"${'x'.repeat(5000)}"`, 11],
  ])('keeps %s', async (_name, body, kept) => {
    seen.length = 0;
    const res = await fetch(`${base}/envoy-authz/upload`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(200);
    expect(String(http(seen[0])?.body).length).toBe(kept);
    expect(seen[0]?.input.truncated_body).toBe(kept > 10);
  });

  it('sends the reply: status, repeated headers, body, the decision id; HEAD without a body', async () => {
    nextResult = {
      allowed: false,
      http_status: 401,
      headers: { 'x-a': ['1', '2'], 'www-authenticate': 'Bearer' },
      body: 'login',
      dynamic_metadata: { not: 'in this mode' },
    };
    try {
      const text = await raw('GET /envoy-authz/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      expect(text).toMatch(/^HTTP\/1\.1 401/);
      expect(text).toContain('x-a: 1\r\nx-a: 2\r\n');
      expect(text).toContain('x-decision-id: dec-1\r\n');
      expect(text).toContain('content-length: 5\r\n');
      expect(text).toContain('content-type: text/plain; charset=utf-8');
      expect(text.endsWith('\r\n\r\nlogin')).toBe(true);
      expect(warnings.at(-1)).toEqual(['dynamic_metadata is not sent in HTTP service mode']);
      const head = await raw('HEAD /envoy-authz/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      expect(head).toMatch(/^HTTP\/1\.1 401/);
      expect(head.endsWith('\r\n\r\n')).toBe(true);
    } finally {
      nextResult = true;
    }
  });

  it('a header value Node refuses turns an allow into a bare 403, never a pass', async () => {
    nextResult = { allowed: true, headers: { 'x-bad': 'a\r\nb' } };
    try {
      expect((await fetch(`${base}/envoy-authz/`)).status).toBe(403);
    } finally {
      nextResult = true;
    }
  });

  it('aborts the check when Envoy goes away before the answer', async () => {
    seen.length = 0;
    let release!: () => void;
    hold = new Promise((resolve) => {
      release = resolve;
    });
    try {
      const controller = new AbortController();
      const pending = fetch(`${base}/envoy-authz/slow`, { signal: controller.signal }).catch(() => undefined);
      await expect.poll(() => seen.length).toBe(1);
      controller.abort();
      await pending;
      await expect.poll(() => seen[0]?.ctx.signal.aborted).toBe(true);
    } finally {
      release();
      hold = undefined;
    }
  });

  it.each([['envoy-authz'], ['/'], ['/envoy-authz/'], ['/a?b'], ['']])(
    'refuses the prefix %j',
    (pathPrefix) => {
      expect(() => createHttpAuthzHandler({ decide, onError: () => {}, pathPrefix })).toThrow(TypeError);
    },
  );

  it('refuses a bad body limit or deny status, as the authorizer does', () => {
    const base = { decide, onError: () => {}, pathPrefix: '/p' };
    expect(() => createHttpAuthzHandler({ ...base, maxBodyBytes: -1 })).toThrow(TypeError);
    expect(() => createHttpAuthzHandler({ ...base, denyStatus: 500 })).toThrow(TypeError);
  });
});
