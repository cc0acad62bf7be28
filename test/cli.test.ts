// The `portcullis` CLI against a real PAP (real Postgres, real opa): every command, its output and exit status.
import { spawn, spawnSync } from 'node:child_process';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { main } from '@portcullis/cli';
import { buildPap, loadPapConfig, type Pap } from '@portcullis/pap';
import { createLogger, createMetrics, Health } from '@portcullis/runtime';
import { createTestDatabase, freePort, opaBin, type TestDatabase, TMP_ENV } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const EXAMPLE = join(ROOT, 'policies/envoy-authz');
const ADMIN_TOKEN = 'cli-test-admin-token-0123456789';

interface Run {
  code: number;
  out: string;
  err: string;
}

describe('portcullis CLI', () => {
  let db: TestDatabase;
  let pap: Pap;
  let url: string;
  let work: string;
  let viewerToken: string;

  /** One in-process CLI invocation, as `portcullis <argv>` would run it. */
  async function cli(
    argv: string[],
    opts: { token?: string; url?: string; stdin?: string } = {},
  ): Promise<Run> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(argv, {
      out: (line) => out.push(line),
      err: (line) => err.push(line),
      env: { PORTCULLIS_URL: opts.url ?? url, PORTCULLIS_TOKEN: opts.token ?? ADMIN_TOKEN },
      cwd: work,
      ...(opts.stdin === undefined ? {} : { stdin: Readable.from([opts.stdin]) }),
    });
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  /** A copy of the example bundle with some files replaced, for the error cases. */
  async function variant(name: string, files: Record<string, string>): Promise<string> {
    const dir = join(work, name);
    await cp(EXAMPLE, dir, { recursive: true });
    for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
    return dir;
  }

  beforeAll(async () => {
    work = await mkdtemp(join(process.env[TMP_ENV] ?? tmpdir(), 'cli-'));
    db = await createTestDatabase();
    const config = loadPapConfig({
      DATABASE_URL: db.url,
      OPA_BIN: opaBin(),
      PAP_HTTP_PORT: '0',
      PAP_GRPC_PORT: '0',
      PAP_ADMIN_TOKEN: ADMIN_TOKEN,
      PAP_ADMIN_TOKEN_FILE: join(work, 'admin-token'),
    });
    pap = await buildPap({
      config,
      logger: createLogger('pap', 'silent'),
      metrics: createMetrics('pap'),
      health: new Health(),
    });
    url = (await pap.listen()).httpUrl;
    viewerToken = (await pap.services.tokens.create({ name: 'ci-viewer', role: 'viewer', actor: 'test' }))
      .token;
  });

  afterAll(async () => {
    await pap?.close();
    await db?.drop();
  });

  describe('the policy lifecycle, in order', () => {
    it('bundle push --activate creates and activates revision 1', async () => {
      const run = await cli(['bundle', 'push', EXAMPLE, '--activate']);
      expect(run).toMatchObject({ code: 0, err: '' });
      expect(run.out).toMatch(/^envoy-authz: created revision 1 \([0-9a-f]{12}\)$/m);
      expect(run.out).toMatch(/^envoy-authz: revision 1 is now active$/m);
    });

    it('pushing the same content again answers with the existing revision', async () => {
      const run = await cli(['bundle', 'push', EXAMPLE]);
      expect(run).toMatchObject({ code: 0, out: expect.stringMatching(/unchanged, existing revision 1/) });
    });

    it('a changed copy (--name) becomes revision 2, not active until asked', async () => {
      const data = JSON.parse(await readFile(join(EXAMPLE, 'data.json'), 'utf8')) as {
        role_permissions: Record<string, unknown>;
      };
      data.role_permissions.auditor = [{ method: 'GET', path: '/audit/**' }];
      const dir = await variant('changed', { 'data.json': JSON.stringify(data) });
      const run = await cli(['bundle', 'push', dir, '--name', 'envoy-authz', '--json']);
      expect(run.code).toBe(0);
      expect(JSON.parse(run.out)).toMatchObject({
        bundle: 'envoy-authz',
        revision: 2,
        created: true,
        activated: null,
      });
    });

    it('bundle list shows the active and the latest revision', async () => {
      const run = await cli(['bundle', 'list']);
      expect(run.code).toBe(0);
      expect(run.out).toBe(
        'envoy-authz\tactive: r1\tlatest: r2\tentrypoints: envoy/authz/allow,envoy/authz/result',
      );
    });

    it.each([
      ['activate 2', '2', ['  r2', '* r1'], ['* r2', '  r1']],
      ['roll back to 1', '1', ['* r2', '  r1'], ['  r2', '* r1']],
    ])('bundle activate: %s', async (_name, revision, before, after) => {
      const marks = async () =>
        (await cli(['bundle', 'revisions', 'envoy-authz'])).out.split('\n').map((l) => l.split('\t')[0]);
      expect(await marks()).toEqual(before);
      const run = await cli(['bundle', 'activate', 'envoy-authz', revision]);
      expect(run.code).toBe(0);
      expect(run.out).toMatch(new RegExp(`^envoy-authz: revision ${revision} is now active`));
      expect(await marks()).toEqual(after);
    });

    it('bundle revisions lists newest first with digest and author', async () => {
      const run = await cli(['bundle', 'revisions', 'envoy-authz']);
      expect(run.out.split('\n')).toEqual([
        expect.stringMatching(/^ {2}r2\t[0-9a-f]{12}\tadmin-env\t\d{4}-\d\d-\d\dT/),
        expect.stringMatching(/^\* r1\t[0-9a-f]{12}\tadmin-env\t/),
      ]);
    });

    it.each([
      ['the WASM bundle', [], 'envoy-authz.tar.gz', true],
      ['the Rego-only bundle', ['--target', 'rego'], 'envoy-authz-rego.tar.gz', false],
    ])('bundle download: %s', async (_name, flags, file, hasWasm) => {
      const run = await cli(['bundle', 'download', 'envoy-authz', ...flags]);
      expect(run.code).toBe(0);
      expect(run.out).toMatch(new RegExp(`^wrote ${file.replace('.', '\\.')} \\(revision 1, \\d+ bytes\\)$`));
      const listing = spawnSync('tar', ['-tzf', join(work, file)], { encoding: 'utf8' });
      expect(listing.status).toBe(0);
      const entries = listing.stdout.split('\n').map((e) => e.replace(/^\/+/, ''));
      expect(entries).toContain('.manifest');
      expect(entries).toContain('policy.rego');
      expect(entries.includes('policy.wasm')).toBe(hasWasm);
    });

    const anonymous = (method: string, path: string) => ({
      attributes: { request: { http: { method, path, headers: {} } } },
      parsed_path: path.split('/').filter((s) => s !== ''),
    });
    it.each([
      [
        'an anonymous product page view is allowed',
        'envoy/authz/allow',
        anonymous('GET', '/productpage'),
        'true',
      ],
      ['anonymous API access is denied', 'envoy/authz/allow', anonymous('GET', '/api/v1/products'), 'false'],
      [
        'the object form carries the status',
        'envoy/authz/result',
        anonymous('DELETE', '/productpage'),
        expect.stringContaining('"http_status": 401'),
      ],
    ])('eval: %s', async (_name, entrypoint, input, expected) => {
      const file = join(work, 'input.json');
      await writeFile(file, JSON.stringify(input));
      const run = await cli(['eval', 'envoy-authz', '1', entrypoint, file]);
      expect(run).toMatchObject({ code: 0, err: '' });
      expect(run.out).toEqual(expected);
    });

    it('eval reads the input from stdin with -', async () => {
      const input = JSON.stringify(anonymous('GET', '/health'));
      const run = await cli(['eval', 'envoy-authz', '1', 'envoy/authz/allow', '-'], { stdin: input });
      expect(run).toMatchObject({ code: 0, out: 'true' });
    });

    it('audit lists who changed what, newest first, and pages', async () => {
      const all = await cli(['audit', '--bundle', 'envoy-authz']);
      expect(all.code).toBe(0);
      const actions = all.out.split('\n').map((line) => line.split('\t').slice(1, 3).join(' '));
      expect(actions).toEqual([
        'admin-env bundle.activate',
        'admin-env bundle.activate',
        'admin-env revision.create',
        'admin-env bundle.activate',
        'admin-env revision.create',
      ]);
      const page = await cli(['audit', '--bundle', 'envoy-authz', '--limit', '2']);
      expect(page.out.split('\n')).toHaveLength(3);
      const cursor = /--cursor (\d+)/.exec(page.out)?.[1];
      expect(cursor).toBeDefined();
      const next = await cli(['audit', '--bundle', 'envoy-authz', '--limit', '2', '--cursor', cursor!]);
      expect(next.out.split('\n')[0]).toContain('revision.create');
    });
  });

  describe('failures: the API’s message, a location when there is one, exit status 1', () => {
    it.each([
      [
        'a Rego syntax error, as file:row:col: message',
        async () => ({
          argv: [
            'bundle',
            'push',
            await variant('syntax', { 'policy.rego': 'package envoy.authz\n\nallow if {\n' }),
          ],
        }),
        (dir: string) => new RegExp(`^${dir}/policy\\.rego:\\d+:\\d+: rego_parse_error: .+$`, 'm'),
      ],
      [
        'a failing Rego test, with the test name',
        async () => ({
          argv: [
            'bundle',
            'push',
            await variant('failing', {
              'extra_test.rego':
                'package envoy.authz_test\n\nimport data.envoy.authz\n\ntest_everything_allowed if {\n\tauthz.allow\n}\n',
            }),
          ],
        }),
        (dir: string) =>
          new RegExp(
            `^${dir}/extra_test\\.rego:5:\\d+: data\\.envoy\\.authz_test\\.test_everything_allowed`,
            'm',
          ),
      ],
      [
        'an unknown bundle',
        async () => ({ argv: ['bundle', 'revisions', 'no-such-bundle'] }),
        () => /^error: .*no-such-bundle.* \(not_found, HTTP 404\)$/m,
      ],
      [
        'a revision that does not exist',
        async () => ({ argv: ['bundle', 'activate', 'envoy-authz', '99'] }),
        () => /^error: bundle envoy-authz has no revision 99 \(not_found, HTTP 404\)$/m,
      ],
      [
        'a bad token',
        async () => ({ argv: ['bundle', 'list'], token: 'not-a-token' }),
        () => /^error: the bearer token is not valid \(unauthenticated, HTTP 401\)$/m,
      ],
      [
        'a role that may not push',
        async () => ({ argv: ['bundle', 'push', EXAMPLE], token: viewerToken }),
        () => /^error: this call needs the author role; the token has viewer \(forbidden, HTTP 403\)$/m,
      ],
      [
        'a PAP that is not there',
        async () => ({ argv: ['bundle', 'list'], url: `http://127.0.0.1:${await freePort()}` }),
        () => /^error: cannot reach the PAP at http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/m,
      ],
      [
        'an input file that is not JSON',
        async () => {
          await writeFile(join(work, 'broken.json'), '{"attributes":');
          return { argv: ['eval', 'envoy-authz', '1', 'envoy/authz/allow', join(work, 'broken.json')] };
        },
        () => /broken\.json: invalid JSON/,
      ],
    ])('%s', async (_name, setup, expected) => {
      const { argv, ...opts } = await setup();
      const run = await cli(argv, opts);
      expect(run.code, run.err).toBe(1);
      expect(run.out).toBe('');
      expect(run.err).toMatch(expected(argv[2] ?? ''));
    });
  });

  it.each([
    ['no command', []],
    ['an unknown command', ['bundle', 'frobnicate']],
    ['a missing argument', ['bundle', 'activate', 'envoy-authz']],
    ['a revision that is not a number', ['eval', 'envoy-authz', 'latest', 'envoy/authz/allow', 'x.json']],
    ['an unknown flag', ['bundle', 'list', '--colour']],
  ])('usage errors exit with 2: %s', async (_name, argv) => {
    const run = await cli(argv);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/usage: portcullis/);
  });

  it.each([
    ['a good token', 0, ADMIN_TOKEN, /^envoy-authz\tactive: r1/m],
    ['a bad token', 1, 'not-a-token', /the bearer token is not valid/],
  ])('the installed bin (bin/portcullis.mjs) with %s exits %i', async (_name, status, token, output) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/portcullis.mjs'), 'bundle', 'list'], {
      cwd: work,
      env: { ...process.env, PORTCULLIS_URL: url, PORTCULLIS_TOKEN: token },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
    });
    const code = await new Promise<number | null>((done) => child.once('close', done));
    expect(code, text).toBe(status);
    expect(text).toMatch(output);
  });
});
