import { gunzipSync } from 'node:zlib';
import { PortcullisError } from '@portcullis/runtime';
import { describe, expect, it } from 'vitest';
import {
  type BundleContent,
  buildBundleArchive,
  deriveRoots,
  readBundleArchive,
  sha256Hex,
} from '../src/index.ts';

const LIMITS = { maxBytes: 1024 * 1024, maxFiles: 100 };

const content = (): BundleContent => ({
  modules: {
    'envoy/authz/policy.rego': 'package envoy.authz\n\ndefault allow := false\n',
    'envoy/authz/policy_test.rego': 'package envoy.authz_test\n\ntest_x if true\n',
    'lib/strings.rego': 'package lib.strings\n',
  },
  data: { users: { bob: { roles: ['admin'] } }, config: { enabled: true } },
  wasm: new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]),
  entrypoints: ['envoy.authz.allow'],
  revision: '42',
});

/** Entry names of a .tar.gz in archive order, read with a plain ustar walk. */
function entryNames(archive: Buffer): string[] {
  const tar = gunzipSync(archive);
  const names: string[] = [];
  for (let off = 0; off + 512 <= tar.length; ) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    names.push(header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, ''));
    const size = Number.parseInt(header.subarray(124, 136).toString('utf8').replace(/\0.*$/s, '').trim(), 8);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return names;
}

describe('buildBundleArchive', () => {
  it('is deterministic: the same content gives the same bytes, whatever the key order', () => {
    const a = buildBundleArchive(content());
    const b = buildBundleArchive(content());
    const reordered = content();
    reordered.modules = Object.fromEntries(Object.entries(reordered.modules).reverse());
    reordered.data = { config: { enabled: true }, users: { bob: { roles: ['admin'] } } };
    const c = buildBundleArchive(reordered);
    expect(Buffer.compare(a, b)).toBe(0);
    expect(sha256Hex(a)).toBe(sha256Hex(c));
    expect(a.subarray(0, 10)).toEqual(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff]));
  });

  it('changes when anything in the content changes', () => {
    const base = sha256Hex(buildBundleArchive(content()));
    expect(sha256Hex(buildBundleArchive({ ...content(), revision: '43' }))).not.toBe(base);
    expect(sha256Hex(buildBundleArchive({ ...content(), data: { users: {} } }))).not.toBe(base);
  });

  it('writes sorted entries in OPA layout with fixed metadata', () => {
    const archive = buildBundleArchive(content());
    expect(entryNames(archive)).toEqual([
      '/.manifest',
      '/data.json',
      '/envoy/authz/policy.rego',
      '/envoy/authz/policy_test.rego',
      '/lib/strings.rego',
      '/policy.wasm',
    ]);
    const tar = gunzipSync(archive);
    // mode, uid, gid, mtime of the first header
    expect(tar.subarray(100, 108).toString()).toBe('000644 \0');
    expect(tar.subarray(108, 116).toString()).toBe('000000 \0');
    expect(Number.parseInt(tar.subarray(136, 148).toString(), 8)).toBe(0);
  });

  it('writes the manifest fields OPA reads', () => {
    const read = readBundleArchive(buildBundleArchive({ ...content(), metadata: { team: 'edge' } }), LIMITS);
    expect(read.manifest).toEqual({
      revision: '42',
      roots: ['config', 'envoy/authz', 'envoy/authz_test', 'lib/strings', 'users'],
      wasm: [{ entrypoint: 'envoy/authz/allow', module: '/policy.wasm' }],
      rego_version: 1,
      metadata: { team: 'edge' },
    });
  });

  it('keeps the entrypoints in metadata when there is no wasm', () => {
    const { wasm: _wasm, ...withoutWasm } = content();
    const read = readBundleArchive(buildBundleArchive(withoutWasm), LIMITS);
    expect(read.wasm).toBeUndefined();
    expect(read.manifest.wasm).toBeUndefined();
    expect(read.manifest.metadata).toEqual({ entrypoints: ['envoy/authz/allow'] });
  });

  it('round-trips paths longer than ustar can hold', () => {
    const path = `${'segment-of-a-long-path/'.repeat(12)}policy.rego`;
    const read = readBundleArchive(
      buildBundleArchive({
        modules: { [path]: 'package deep\n' },
        data: {},
        entrypoints: ['deep'],
        revision: '',
      }),
      LIMITS,
    );
    expect(Object.keys(read.modules)).toEqual([path]);
  });

  it.each<[string, Partial<BundleContent>, string, RegExp]>([
    [
      'a module path escaping the root',
      { modules: { '../x.rego': 'package x\n' } },
      'invalid_bundle',
      /escapes/,
    ],
    [
      'a module that is not .rego',
      { modules: { 'x.txt': 'package x\n' } },
      'invalid_bundle',
      /must end in \.rego/,
    ],
    [
      'the same module twice',
      { modules: { 'x.rego': 'package x\n', '/x.rego': 'package x\n' } },
      'invalid_bundle',
      /given twice/,
    ],
    ['data that is not an object', { data: [1, 2] }, 'validation_failed', /data must be a JSON object/],
    [
      'data JSON cannot hold',
      { data: { n: Number.NaN } },
      'validation_failed',
      /data\.n: NaN is not a JSON number/,
    ],
    ['a bad entrypoint', { entrypoints: ['envoy..allow'] }, 'validation_failed', /empty segment/],
    [
      'roots that miss a package',
      { roots: ['envoy'] },
      'invalid_bundle',
      /do not permit package "lib\/strings"/,
    ],
    ['overlapping roots', { roots: ['', 'envoy'] }, 'invalid_bundle', /overlap/],
  ])('rejects %s', (_name, patch, code, message) => {
    try {
      buildBundleArchive({ ...content(), ...patch });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(PortcullisError);
      expect((err as PortcullisError).code).toBe(code);
      expect((err as PortcullisError).message).toMatch(message);
    }
  });
});

describe('deriveRoots', () => {
  it.each<[string, Record<string, string>, Record<string, unknown>, string[], string[]]>([
    [
      'packages, data keys and entrypoints',
      { a: 'package envoy.authz\n' },
      { users: {} },
      ['envoy/authz/allow'],
      ['envoy/authz', 'users'],
    ],
    [
      'ancestors absorb descendants',
      { a: 'package envoy.authz\n', b: '# lib\npackage envoy\n' },
      {},
      [],
      ['envoy'],
    ],
    ['a package entrypoint above the packages', { a: 'package envoy.authz\n' }, {}, ['envoy'], ['envoy']],
    [
      'bracketed package segments',
      { a: 'package teams["edge-proxy"].authz\n' },
      {},
      [],
      ['teams/edge-proxy/authz'],
    ],
    ['an unreadable package', { a: 'import rego.v1\n' }, { users: {} }, [], ['']],
    ['nothing at all', {}, {}, [], ['']],
  ])('%s', (_name, modules, data, entrypoints, roots) => {
    expect(deriveRoots(modules, data, entrypoints)).toEqual(roots);
  });
});
