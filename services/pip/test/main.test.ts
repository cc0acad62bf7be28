// The PIP as a process: configuration errors name the variable; a real start serves the walkthrough and stops cleanly.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, freePort, spawnService } from '@portcullis/testkit';
import { describe, expect, it } from 'vitest';
import { loadPipConfig } from '../src/config.ts';
import { makeKey, sign, TestIssuer } from './support/issuer.ts';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const MAIN = join(ROOT, 'services/pip/src/main.ts');
const TSX = join(ROOT, 'node_modules/.bin/tsx');
const GOOD = { DATABASE_URL: 'postgres://u@127.0.0.1:1/db' };

describe('configuration', () => {
  it.each([
    ['DATABASE_URL', {}, 'must be set'],
    ['PIP_HTTP_PORT', { PIP_HTTP_PORT: '70000' }, 'must be <= 65535'],
    ['PIP_JWT_CLOCK_SKEW', { PIP_JWT_CLOCK_SKEW: 'soon' }, 'expected a duration'],
    ['PIP_ADMIN_TOKEN', { PIP_ADMIN_TOKEN: 'short' }, 'at least 16 characters'],
    ['PIP_JWKS_MIN_REFRESH', { PIP_JWKS_MIN_REFRESH: '2d', PIP_JWKS_MAX_REFRESH: '1d' }, 'must not exceed'],
    ['BUS', { BUS: 'carrier-pigeon' }, 'expected one of'],
  ])('names %s when it is wrong', (variable, env, reason) => {
    const source = variable === 'DATABASE_URL' ? env : { ...GOOD, ...env };
    expect(() => loadPipConfig(source)).toThrow(new RegExp(`${variable}: .*${reason}`));
  });

  it('stops the process with status 78 and one line naming the variable', async () => {
    const child = spawn(TSX, [MAIN], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...GOOD, PIP_GRPC_PORT: 'x' },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(78);
    expect(stderr.trim()).toBe('pip: invalid configuration: PIP_GRPC_PORT: expected an integer, got "x"');
  });
});

describe('a running PIP', () => {
  it('registers a RequestAuthentication, authenticates a request, serves attributes, and stops cleanly', async () => {
    const db = await createTestDatabase();
    const key = await makeKey('RS256', 'walk');
    const issuer = await TestIssuer.start(key);
    const [http, grpc] = [await freePort(), await freePort()];
    const token = 'walkthrough-admin-token-0123456789';
    const service = await spawnService(
      TSX,
      [MAIN],
      {
        DATABASE_URL: db.url,
        BUS: 'postgres',
        PIP_ADMIN_TOKEN: token,
        PIP_HTTP_PORT: String(http),
        PIP_GRPC_PORT: String(grpc),
        LOG_LEVEL: 'warn',
      },
      { cwd: ROOT, readyUrl: `http://127.0.0.1:${http}/readyz` },
    );
    try {
      const base = `http://127.0.0.1:${http}`;
      const auth = { authorization: `Bearer ${token}` };
      const yaml = [
        'apiVersion: security.istio.io/v1',
        'kind: RequestAuthentication',
        'metadata: {name: jwt, namespace: shop}',
        'spec:',
        '  jwtRules:',
        '  - issuer: https://walk.example',
        `    jwksUri: ${issuer.jwksUri}`,
        '    outputClaimToHeaders: [{header: x-user, claim: sub}]',
      ].join('\n');
      const put = await fetch(`${base}/v1/request-authentications/shop/jwt`, {
        method: 'PUT',
        headers: { ...auth, 'content-type': 'application/yaml' },
        body: yaml,
      });
      expect(put.status).toBe(201);
      const jwt = await sign(key, {
        iss: 'https://walk.example',
        sub: 'alice',
        exp: Math.floor(Date.now() / 1000) + 60,
      });
      const ok = await fetch(`${base}/v1/authenticate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ namespace: 'shop', headers: { authorization: `Bearer ${jwt}` } }),
      });
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({
        principal: 'https://walk.example/alice',
        upstream: { set: { 'x-user': 'alice' } },
      });
      const bad = await fetch(`${base}/v1/authenticate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          namespace: 'shop',
          headers: { authorization: `Bearer ${jwt.slice(0, -4)}AAAA` },
        }),
      });
      expect(bad.status).toBe(401);
      expect(await bad.json()).toMatchObject({ code: 'bad_signature' });
      const attrs = await fetch(`${base}/v1/attributes/user/alice`, {
        method: 'PUT',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ attributes: { department: 'eng' } }),
      });
      expect(attrs.status).toBe(201);
      expect(attrs.headers.get('etag')).toBe('"1"');
      const openapi = await fetch(`${base}/openapi.json`);
      expect(Object.keys(((await openapi.json()) as { paths: object }).paths)).toContain(
        '/v1/attributes:import',
      );
    } finally {
      const exit = await service.stop();
      await issuer.close();
      await db.drop();
      expect(exit.code, service.output()).toBe(0);
    }
  });
});
