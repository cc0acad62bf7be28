import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, opaBin, waitFor } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBundleArchive, readBundleArchive } from '../src/index.ts';

const run = promisify(execFile);
const LIMITS = { maxBytes: 16 * 1024 * 1024, maxFiles: 100 };

const modules = {
  'envoy/authz/policy.rego': [
    'package envoy.authz',
    '',
    'default allow := false',
    '',
    'allow if data.users[input.user].admin',
    '',
  ].join('\n'),
  'envoy/authz/policy_test.rego':
    'package envoy.authz_test\n\nimport data.envoy.authz\n\ntest_admin if authz.allow with input as {"user": "alice"}\n',
};
const data = { users: { alice: { admin: true }, bob: { admin: false } } };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(process.env['PORTCULLIS_TEST_TMP'] ?? tmpdir(), 'bundle-opa-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function stopped(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

describe('bundles and a stock opa', () => {
  it('opa run --server loads a bundle we built and answers from it', async () => {
    const file = join(dir, 'rego-only.tar.gz');
    await writeFile(
      file,
      buildBundleArchive({ modules, data, entrypoints: ['envoy/authz/allow'], revision: 'r1' }),
    );
    const port = await freePort();
    const opa = spawn(
      opaBin(),
      ['run', '--server', '--addr', `127.0.0.1:${port}`, '--log-level', 'error', file],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    opa.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    try {
      const base = `http://127.0.0.1:${port}`;
      await waitFor(async () => (await fetch(`${base}/health`)).ok, {
        timeoutMs: 15_000,
        message: () => `opa to load the bundle (stderr: ${stderr})`,
      });
      const ask = async (user: string) => {
        const res = await fetch(`${base}/v1/data/envoy/authz/allow`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ input: { user } }),
        });
        return ((await res.json()) as { result?: unknown }).result;
      };
      expect(await ask('alice')).toBe(true);
      expect(await ask('bob')).toBe(false);
      expect(stderr).not.toMatch(/"level":"error"/);
    } finally {
      await stopped(opa);
    }
  });

  it('opa inspect accepts a bundle we built with the wasm opa compiled, and we read what opa builds', async () => {
    const src = join(dir, 'src');
    for (const [path, text] of Object.entries(modules)) {
      await mkdir(dirname(join(src, path)), { recursive: true });
      await writeFile(join(src, path), text);
    }
    await writeFile(join(src, 'data.json'), JSON.stringify(data));
    const opaBuilt = join(dir, 'opa-built.tar.gz');
    await run(
      opaBin(),
      [
        'build',
        '-t',
        'wasm',
        '-e',
        'envoy/authz/allow',
        '--ignore',
        '*_test.rego',
        '-b',
        '-o',
        opaBuilt,
        '.',
      ],
      {
        cwd: src,
      },
    );

    const read = readBundleArchive(await readFile(opaBuilt), LIMITS);
    expect(read.entrypoints).toEqual(['envoy/authz/allow']);
    expect(read.wasm?.subarray(0, 4)).toEqual(Buffer.from('\0asm'));
    expect(read.data).toEqual(data);
    expect(Object.keys(read.modules)).toEqual(['envoy/authz/policy.rego']);
    expect(read.manifest.rego_version).toBe(1);

    const ours = join(dir, 'with-wasm.tar.gz');
    await writeFile(
      ours,
      buildBundleArchive({
        modules,
        data,
        wasm: read.wasm!,
        entrypoints: ['envoy.authz.allow'],
        revision: 'r2',
      }),
    );
    const { stdout } = await run(opaBin(), ['inspect', '--format', 'json', ours]);
    const inspected = JSON.parse(stdout) as { manifest: Record<string, unknown>; wasm_modules?: unknown[] };
    expect(inspected.manifest).toMatchObject({
      revision: 'r2',
      roots: ['envoy/authz', 'envoy/authz_test', 'users'],
      wasm: [{ entrypoint: 'envoy/authz/allow', module: '/policy.wasm' }],
      rego_version: 1,
    });
    expect(inspected.wasm_modules).toHaveLength(1);
  });
});
