import { mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PortcullisError } from '@portcullis/runtime';
import { opaBin } from '@portcullis/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type BundleSource, type CompileOptions, compileBundle, opaVersion } from '../src/compile/index.ts';

const POLICY = `package envoy.authz

default allow := false

allow if {
	input.attributes.request.http.method == "GET"
	data.config.enabled
}
`;

const TESTS = `package envoy.authz_test

import data.envoy.authz

get := {"attributes": {"request": {"http": {"method": "GET"}}}}

post := {"attributes": {"request": {"http": {"method": "POST"}}}}

test_get_allowed if authz.allow with input as get

test_post_denied if not authz.allow with input as post
`;

const source = (patch: Partial<BundleSource> = {}): BundleSource => ({
  modules: { 'envoy/authz/policy.rego': POLICY, 'envoy/authz/policy_test.rego': TESTS },
  data: { config: { enabled: true } },
  entrypoints: ['data.envoy.authz.allow'],
  ...patch,
});

let tmpRoot: string;
const options = (patch: Partial<CompileOptions> = {}): CompileOptions => ({
  opaBin: opaBin(),
  strict: true,
  timeoutMs: 30_000,
  tmpDir: tmpRoot,
  ...patch,
});

async function compileError(src: BundleSource, opts: CompileOptions): Promise<PortcullisError> {
  try {
    await compileBundle(src, opts);
  } catch (err) {
    if (err instanceof PortcullisError) return err;
    throw err;
  }
  throw new Error('expected compileBundle to fail');
}

/** Processes whose working directory lies under `root` (opa runs with its cwd in the compile dir). */
async function processesUnder(root: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => '');
    if (cwd.startsWith(root)) found.push(`${pid} ${cwd}`);
  }
  return found;
}

beforeAll(async () => {
  tmpRoot = await mkdtemp(join(process.env['PORTCULLIS_TEST_TMP'] ?? tmpdir(), 'pap-compile-'));
});

afterEach(async () => {
  // Every compile, whatever its outcome, leaves nothing behind: no directory, no process.
  expect(await readdir(tmpRoot)).toEqual([]);
  expect(await processesUnder(tmpRoot)).toEqual([]);
});

afterAll(async () => {
  await rm(tmpRoot, { recursive: true, force: true });
});

describe('compileBundle', () => {
  it('checks, tests and compiles a good bundle to WASM', async () => {
    const compiled = await compileBundle(source(), options());
    expect(compiled.entrypoints).toEqual(['envoy/authz/allow']);
    expect(compiled.wasm.subarray(0, 4)).toEqual(Buffer.from('\0asm'));
    expect(compiled.builtins).toEqual([]);
    expect(compiled.tests).toEqual({ passed: 2, total: 2, skipped: 0 });
    expect(compiled.opaVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(compiled.modules).toEqual(source().modules);
    expect(compiled.data).toEqual({ config: { enabled: true } });
  });

  it.each<[string, BundleSource, Partial<CompileOptions>, Partial<CompiledSummary>]>([
    [
      'a bundle without tests',
      source({ modules: { 'envoy/authz/policy.rego': POLICY } }),
      {},
      { tests: { passed: 0, total: 0, skipped: 0 } },
    ],
    [
      'an unused variable when not strict',
      source({ modules: { 'envoy/authz/policy.rego': `${POLICY}\nx if {\n\ty := 1\n\tinput.a == 1\n}\n` } }),
      { strict: false },
      {},
    ],
    [
      'several entrypoints, in the given order',
      source({
        modules: { 'envoy/authz/policy.rego': `${POLICY}\nreason := "ok"\n` },
        entrypoints: ['envoy/authz/reason', 'envoy.authz.allow', 'envoy/authz/reason'],
      }),
      {},
      { entrypoints: ['envoy/authz/reason', 'envoy/authz/allow'] },
    ],
    [
      'a package as the entrypoint',
      source({ entrypoints: ['envoy/authz'] }),
      {},
      { entrypoints: ['envoy/authz'] },
    ],
    [
      'a builtin the host must supply',
      source({
        modules: {
          'envoy/authz/policy.rego': `${POLICY}\nstamp := time.now_ns()\n\nhash := crypto.sha256("x")\n\nunused := sprintf("%v", [1])\n`,
        },
        entrypoints: ['envoy/authz/allow', 'envoy/authz/stamp', 'envoy/authz/hash'],
      }),
      {},
      // Only what the entrypoints reach is compiled: sprintf in `unused` is not imported.
      { builtins: ['crypto.sha256', 'time.now_ns'] },
    ],
  ])('compiles %s', async (_name, src, opts, expected) => {
    const compiled = await compileBundle(src, options(opts));
    expect({
      entrypoints: compiled.entrypoints,
      builtins: compiled.builtins,
      tests: compiled.tests,
    }).toMatchObject(expected);
  });

  it.each<[string, BundleSource, Partial<CompileOptions>, string, RegExp, Record<string, unknown>[]]>([
    [
      'a syntax error',
      source({
        modules: { 'envoy/authz/policy.rego': 'package envoy.authz\n\nallow if {\n\tinput.x ==\n}\n' },
      }),
      {},
      'rego_compile_error',
      /^envoy\/authz\/policy\.rego:5:1: unexpected } token/,
      [
        {
          file: 'envoy/authz/policy.rego',
          row: 5,
          col: 1,
          code: 'rego_parse_error',
          message: 'unexpected } token',
        },
      ],
    ],
    [
      'a syntax error without --strict, found by opa test and described by opa check',
      source({
        modules: {
          'envoy/authz/policy.rego': 'package envoy.authz\n\nallow if {\n\tinput.x ==\n}\n',
          'envoy/authz/policy_test.rego': TESTS,
        },
      }),
      { strict: false },
      'rego_compile_error',
      /^envoy\/authz\/policy\.rego:5:1: unexpected } token/,
      [
        {
          file: 'envoy/authz/policy.rego',
          row: 5,
          col: 1,
          code: 'rego_parse_error',
          message: 'unexpected } token',
        },
      ],
    ],
    [
      'a type error',
      source({ modules: { 'envoy/authz/policy.rego': `${POLICY}\nn := count(1)\n` } }),
      { strict: false },
      'rego_compile_error',
      /count/,
      [expect.objectContaining({ file: 'envoy/authz/policy.rego', row: 10, code: 'rego_type_error' })],
    ],
    [
      'a type error no entrypoint reaches, without tests or --strict (opa build finds it)',
      source({ modules: { 'envoy/authz/policy.rego': `${POLICY}\nn := count(1)\n` } }),
      { strict: false },
      'rego_compile_error',
      /^envoy\/authz\/policy\.rego:10:\d+: count: invalid argument/,
      [expect.objectContaining({ file: 'envoy/authz/policy.rego', row: 10, code: 'rego_type_error' })],
    ],
    [
      'an unsafe variable in a nested file',
      source({
        modules: { 'teams/edge/ingress.rego': 'package teams.edge\n\ndeny if input.x == y\n' },
        entrypoints: ['teams/edge/deny'],
      }),
      {},
      'rego_compile_error',
      /var y is unsafe/,
      [expect.objectContaining({ file: 'teams/edge/ingress.rego', row: 3, code: 'rego_unsafe_var_error' })],
    ],
    [
      'an unused variable under --strict',
      source({ modules: { 'envoy/authz/policy.rego': `${POLICY}\nx if {\n\ty := 1\n\tinput.a == 1\n}\n` } }),
      { strict: true },
      'rego_compile_error',
      /assigned var y unused/,
      [
        {
          file: 'envoy/authz/policy.rego',
          row: 11,
          col: 2,
          code: 'rego_compile_error',
          message: 'assigned var y unused',
        },
      ],
    ],
    [
      'a failing test',
      source({
        modules: {
          'envoy/authz/policy.rego': POLICY,
          'envoy/authz/policy_test.rego': `${TESTS}\ntest_post_allowed if authz.allow with input as post\n`,
        },
      }),
      {},
      'rego_test_failed',
      /1 failed and 0 errored of 3 tests: data\.envoy\.authz_test\.test_post_allowed \(envoy\/authz\/policy_test\.rego:13\)/,
      [
        {
          test: 'data.envoy.authz_test.test_post_allowed',
          file: 'envoy/authz/policy_test.rego',
          row: 13,
          col: 1,
          message: expect.any(String),
        },
      ],
    ],
    [
      'an erroring test',
      source({
        modules: {
          'envoy/authz/policy.rego': POLICY,
          'envoy/authz/policy_test.rego': `${TESTS}\nf(_) := 1\n\nf(_) := 2\n\ntest_conflict if f(1) == 1\n`,
        },
      }),
      {},
      'rego_test_failed',
      /0 failed and 1 errored of 3 tests: data\.envoy\.authz_test\.test_conflict/,
      [
        {
          test: 'data.envoy.authz_test.test_conflict',
          file: 'envoy/authz/policy_test.rego',
          row: 17,
          col: 1,
          message: expect.stringMatching(
            /^eval_conflict_error: .*conflicting values.*\(at envoy\/authz\/policy_test\.rego:\d+:\d+\)$/s,
          ),
        },
      ],
    ],
    [
      'entrypoints no rule defines',
      source({ entrypoints: ['envoy/authz/allow', 'envoy/authz/nope', 'envoy.missing.allow'] }),
      {},
      'entrypoint_undefined',
      /no rule defines entrypoints envoy\/authz\/nope, envoy\/missing\/allow/,
      [{ entrypoint: 'envoy/authz/nope' }, { entrypoint: 'envoy/missing/allow' }],
    ],
    [
      'an entrypoint only a test module defines',
      source({ entrypoints: ['envoy/authz_test/get'] }),
      {},
      'entrypoint_undefined',
      /envoy\/authz_test\/get/,
      [{ entrypoint: 'envoy/authz_test/get' }],
    ],
    [
      'a builtin the engine does not support',
      source({
        modules: {
          'envoy/authz/policy.rego': `${POLICY}\nfetched := http.send({"method": "GET", "url": input.url})\n\nstamp := time.now_ns()\n`,
        },
        entrypoints: ['envoy/authz/allow', 'envoy/authz/fetched', 'envoy/authz/stamp'],
      }),
      { unsupported: (builtins) => builtins.filter((b) => b === 'http.send') },
      'unsupported_builtin',
      /builtins the engine cannot run: http\.send/,
      [{ builtin: 'http.send' }],
    ],
    [
      'a module path with ".."',
      source({ modules: { '../evil.rego': POLICY } }),
      {},
      'invalid_bundle',
      /"\.\.\/evil\.rego".*escapes/,
      [{ file: '../evil.rego', message: expect.stringMatching(/escapes/) }],
    ],
    [
      'an absolute module path',
      source({ modules: { '/etc/evil.rego': POLICY } }),
      {},
      'invalid_bundle',
      /absolute/,
      [{ file: '/etc/evil.rego', message: expect.any(String) }],
    ],
    [
      'a module that is not .rego',
      source({ modules: { 'policy.sh': POLICY } }),
      {},
      'invalid_bundle',
      /end in \.rego/,
      [{ file: 'policy.sh', message: expect.any(String) }],
    ],
    [
      'a hidden module path',
      source({ modules: { '.hidden/p.rego': POLICY } }),
      {},
      'invalid_bundle',
      /must not start with "\."/,
      [{ file: '.hidden/p.rego', message: expect.any(String) }],
    ],
    [
      'no modules',
      source({ modules: {} }),
      {},
      'validation_failed',
      /at least one Rego module/,
      [{ field: 'modules', reason: 'is empty' }],
    ],
    [
      'data that is not an object',
      source({ data: [1] }),
      {},
      'validation_failed',
      /data must be a JSON object/,
      [{ field: 'data', reason: expect.any(String) }],
    ],
    [
      'no entrypoints',
      source({ entrypoints: [] }),
      {},
      'validation_failed',
      /at least one entrypoint/,
      [{ field: 'entrypoints', reason: expect.any(String) }],
    ],
    [
      'a malformed entrypoint',
      source({ entrypoints: ['envoy..allow'] }),
      {},
      'validation_failed',
      /empty segment/,
      [expect.objectContaining({ field: 'entrypoints' })],
    ],
    [
      'an oversize module',
      source(),
      { limits: { maxModuleBytes: 100 } },
      'payload_too_large',
      /over 100/,
      [expect.objectContaining({ file: 'envoy/authz/policy.rego' })],
    ],
    [
      'a deadline that has already passed',
      source(),
      { timeoutMs: 1 },
      'timeout',
      /did not finish before the compile deadline/,
      [expect.objectContaining({ step: expect.any(String) })],
    ],
  ])('rejects %s', async (_name, src, opts, code, message, details) => {
    const err = await compileError(src, options(opts));
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain(tmpRoot);
    expect(err.details).toEqual(details);
  });

  describe('with a test that hangs', () => {
    let server: Server;
    const sockets = new Set<Socket>();
    let url: string;
    beforeAll(async () => {
      // Accepts connections and never answers: http.send in the test blocks until opa is killed.
      server = createServer((socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('no port');
      url = `http://127.0.0.1:${address.port}/`;
    });
    afterAll(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    });

    it('kills opa at the deadline and reports a timeout', async () => {
      const hanging = `package envoy.authz_test\n\ntest_hangs if http.send({"method": "GET", "url": "${url}", "timeout": "60s"}).status_code == 200\n`;
      const started = Date.now();
      const err = await compileError(
        source({ modules: { 'envoy/authz/policy.rego': POLICY, 'envoy/authz/hang_test.rego': hanging } }),
        options({ timeoutMs: 1500 }),
      );
      expect(err.code).toBe('timeout');
      expect(err.details).toEqual([{ step: 'test', deadline: expect.any(String) }]);
      expect(Date.now() - started).toBeLessThan(10_000);
    });
  });
});

interface CompiledSummary {
  entrypoints: string[];
  builtins: string[];
  tests: { passed: number; total: number; skipped: number };
}

describe('opaVersion', () => {
  it('reports the version of the binary and caches it', async () => {
    const first = opaVersion(opaBin());
    expect(opaVersion(opaBin())).toBe(first);
    expect(await first).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('fails with internal for a binary that does not exist', async () => {
    await expect(opaVersion('/nonexistent/opa')).rejects.toMatchObject({ code: 'internal' });
  });
});
