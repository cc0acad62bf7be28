import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { buildBundleArchive } from '@portcullis/bundle';
import { PortcullisError } from '@portcullis/runtime';
import { opaBin } from '@portcullis/testkit';
import { create as createTar } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BundleUploadOptions, compileBundle, readBundleUpload } from '../src/compile/index.ts';

const run = promisify(execFile);

let tarCount = 0;
/** A .tar.gz of these files (and symbolic links), made by the tar package from a real directory. */
async function tarOf(files: Record<string, string>, symlinks: Record<string, string> = {}): Promise<Buffer> {
  const root = join(dir, `tar-${tarCount++}`);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  for (const [path, target] of Object.entries(symlinks)) await symlink(target, join(root, path));
  const file = `${root}.tar.gz`;
  await createTar({ gzip: true, cwd: root, file, portable: true }, ['.']);
  return readFile(file);
}

const modules = {
  'envoy/authz/policy.rego':
    'package envoy.authz\n\ndefault allow := false\n\nallow if data.users[input.user].admin\n\nreason := "admin"\n',
  'envoy/authz/policy_test.rego':
    'package envoy.authz_test\n\nimport data.envoy.authz\n\ntest_admin if authz.allow with input as {"user": "alice"}\n',
};
const data = { users: { alice: { admin: true } } };

let dir: string;
let opaBuilt: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(join(process.env['PORTCULLIS_TEST_TMP'] ?? tmpdir(), 'pap-upload-'));
  const src = join(dir, 'src');
  for (const [path, text] of Object.entries(modules)) {
    await mkdir(dirname(join(src, path)), { recursive: true });
    await writeFile(join(src, path), text);
  }
  await writeFile(join(src, 'data.json'), JSON.stringify(data));
  const out = join(dir, 'bundle.tar.gz');
  await run(
    opaBin(),
    ['build', '-t', 'wasm', '-e', 'envoy/authz/allow', '-e', 'envoy/authz/reason', '-b', '-o', out, '.'],
    {
      cwd: src,
    },
  );
  opaBuilt = await readFile(out);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function uploadError(
  body: Buffer,
  contentType: string,
  options: BundleUploadOptions,
): Promise<PortcullisError> {
  try {
    await readBundleUpload(body, contentType, options);
  } catch (err) {
    if (err instanceof PortcullisError) return err;
    throw err;
  }
  throw new Error('expected readBundleUpload to fail');
}

describe('readBundleUpload', () => {
  it('reads a tar.gz of a policy directory and the source compiles', async () => {
    const body = await tarOf({ ...modules, 'data.json': JSON.stringify(data) });
    const upload = await readBundleUpload(body, 'application/gzip', {
      entrypoints: ['envoy.authz.allow', 'envoy/authz/reason'],
    });
    expect(upload.entrypoints).toEqual(['envoy/authz/allow', 'envoy/authz/reason']);
    expect(upload.data).toEqual(data);
    expect(upload.modules).toEqual(modules);
    expect(upload.ignored).toEqual([]);
    const compiled = await compileBundle(upload, {
      opaBin: opaBin(),
      strict: true,
      timeoutMs: 30_000,
      tmpDir: dir,
    });
    expect(compiled.entrypoints).toEqual(['envoy/authz/allow', 'envoy/authz/reason']);
    expect(compiled.tests).toEqual({ passed: 1, total: 1, skipped: 0 });
  });

  it('refuses a bundle `opa build -t wasm` wrote, whose Rego lost its entrypoint rules', async () => {
    const err = await uploadError(opaBuilt, 'application/gzip', {});
    expect(err.code).toBe('invalid_bundle');
    expect(err.message).toMatch(
      /^envoy\/authz\/policy\.rego: this bundle was built with `opa build -t wasm`/,
    );
  });

  const papBundle = (withWasm: boolean) =>
    buildBundleArchive({
      modules,
      data,
      entrypoints: ['envoy.authz.allow', 'envoy/authz/reason'],
      revision: '3',
      ...(withWasm ? { wasm: Buffer.from('\0asm\x01\0\0\0') } : {}),
    });

  it.each<[string, () => Buffer, string, string[] | undefined, string[]]>([
    [
      'the wasm entrypoints of the PAP’s own bundle',
      () => papBundle(true),
      'application/gzip',
      undefined,
      ['envoy/authz/allow', 'envoy/authz/reason'],
    ],
    [
      'the wasm entrypoints without the test rules opa build adds',
      () =>
        buildBundleArchive({
          modules,
          data,
          entrypoints: ['envoy/authz/allow', 'envoy/authz_test/test_admin'],
          revision: '',
          wasm: Buffer.from('\0asm\x01\0\0\0'),
        }),
      'application/gzip',
      undefined,
      ['envoy/authz/allow'],
    ],
    [
      'metadata.entrypoints of a bundle without wasm (the PAP’s Rego-only bundle)',
      () => papBundle(false),
      'application/x-gzip',
      undefined,
      ['envoy/authz/allow', 'envoy/authz/reason'],
    ],
    [
      'the request’s entrypoints over the manifest’s',
      () => papBundle(true),
      'application/octet-stream; charset=binary',
      ['data.envoy.authz.reason'],
      ['envoy/authz/reason'],
    ],
  ])('uses %s', async (_name, body, contentType, entrypoints, expected) => {
    const upload = await readBundleUpload(body(), contentType, entrypoints ? { entrypoints } : {});
    expect(upload.entrypoints).toEqual(expected);
  });

  it.each<[string, () => Promise<Buffer>, string, Partial<BundleUploadOptions>, string, RegExp]>([
    [
      'a JSON content type',
      async () => opaBuilt,
      'application/json',
      {},
      'unsupported_media_type',
      /must be sent as application\/gzip/,
    ],
    [
      'a bundle that names no entrypoints',
      async () => buildBundleArchive({ modules, data, entrypoints: [], revision: '' }),
      'application/gzip',
      {},
      'validation_failed',
      /names no entrypoints/,
    ],
    [
      'a Rego v0 bundle',
      () =>
        tarOf({
          '.manifest': '{"revision": "", "rego_version": 0}',
          'p.rego': 'package p\n\nallow { true }\n',
        }),
      'application/gzip',
      {},
      'invalid_bundle',
      /Rego v0 bundles are not supported/,
    ],
    [
      'a bundle with a symbolic link',
      () => tarOf({ 'p.rego': 'package p\n' }, { 'link.rego': '/etc/passwd' }),
      'application/gzip',
      {},
      'invalid_bundle',
      /"\.\/link\.rego" is a symbolic link/,
    ],
    [
      'a bundle over the size limit',
      async () => opaBuilt,
      'application/gzip',
      { maxBytes: 1000 },
      'payload_too_large',
      /1000/,
    ],
    [
      'bytes that are not a bundle',
      async () => Buffer.from('{"modules": {}}'),
      'application/gzip',
      {},
      'invalid_bundle',
      /not gzip/,
    ],
  ])('rejects %s', async (_name, body, contentType, options, code, message) => {
    const err = await uploadError(await body(), contentType, options);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });
});
