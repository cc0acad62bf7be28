import { gzipSync } from 'node:zlib';
import { PortcullisError } from '@portcullis/runtime';
import { describe, expect, it } from 'vitest';
import { buildBundleArchive, readBundleArchive } from '../src/index.ts';
import { type RawEntry, rawTar, rawTarGz } from './hostile-tar.ts';

const LIMITS = { maxBytes: 1024 * 1024, maxFiles: 100 };
const POLICY = 'package envoy.authz\n\nallow := true\n';

function readError(bytes: Uint8Array, limits = LIMITS): PortcullisError {
  try {
    readBundleArchive(bytes, limits);
  } catch (err) {
    if (err instanceof PortcullisError) return err;
    throw err;
  }
  throw new Error('expected readBundleArchive to throw');
}

describe('readBundleArchive rejects hostile archives', () => {
  const manifest = (body: unknown): RawEntry => ({ path: '/.manifest', body: JSON.stringify(body) });
  it.each<[string, () => Uint8Array, string, RegExp, Partial<typeof LIMITS & { maxEntryBytes: number }>?]>([
    [
      'a ".." path',
      () => rawTarGz([{ path: '../evil.rego', body: POLICY }]),
      'invalid_bundle',
      /"\.\.\/evil\.rego".*escapes/,
    ],
    [
      'a ".." inside a path',
      () => rawTarGz([{ path: 'a/../../evil.rego', body: POLICY }]),
      'invalid_bundle',
      /escapes/,
    ],
    [
      'a PAX path with ".."',
      () => rawTarGz([{ path: 'ok.rego', pax: { path: '../../pax.rego' }, body: POLICY }]),
      'invalid_bundle',
      /"\.\.\/\.\.\/pax\.rego"/,
    ],
    [
      'a GNU long name with ".."',
      () => rawTarGz([{ path: 'ok.rego', gnuLongPath: `${'d/'.repeat(60)}../../../x.rego`, body: POLICY }]),
      'invalid_bundle',
      /escapes/,
    ],
    [
      'an absolute path',
      () => rawTarGz([{ path: '//etc/passwd', body: 'root' }]),
      'invalid_bundle',
      /"\/\/etc\/passwd".*absolute/,
    ],
    [
      'a drive-letter path',
      () => rawTarGz([{ path: 'C:/x.rego', body: POLICY }]),
      'invalid_bundle',
      /drive letter/,
    ],
    [
      'a backslash path',
      () => rawTarGz([{ path: 'a\\..\\x.rego', body: POLICY }]),
      'invalid_bundle',
      /backslash/,
    ],
    [
      'a symbolic link',
      () => rawTarGz([{ path: 'link.rego', type: 'SymbolicLink', linkpath: '/etc/passwd' }]),
      'invalid_bundle',
      /"link\.rego" is a symbolic link/,
    ],
    [
      'a hard link',
      () =>
        rawTarGz([
          { path: 'a.rego', body: POLICY },
          { path: 'b.rego', type: 'Link', linkpath: 'a.rego' },
        ]),
      'invalid_bundle',
      /"b\.rego" is a hard link/,
    ],
    [
      'a character device',
      () => rawTarGz([{ path: 'tty', type: 'CharacterDevice' }]),
      'invalid_bundle',
      /"tty" is a character device/,
    ],
    [
      'a block device',
      () => rawTarGz([{ path: 'sda', type: 'BlockDevice' }]),
      'invalid_bundle',
      /"sda" is a block device/,
    ],
    ['a FIFO', () => rawTarGz([{ path: 'pipe', type: 'FIFO' }]), 'invalid_bundle', /"pipe" is a FIFO/],
    [
      'a duplicate path',
      () =>
        rawTarGz([
          { path: '/a.rego', body: POLICY },
          { path: '/a.rego', body: POLICY },
        ]),
      'invalid_bundle',
      /"\/a\.rego" appears more than once/,
    ],
    [
      'a duplicate path in two spellings',
      () =>
        rawTarGz([
          { path: 'a.rego', body: POLICY },
          { path: './a.rego', body: POLICY },
        ]),
      'invalid_bundle',
      /more than once/,
    ],
    [
      'a file used as a directory',
      () =>
        rawTarGz([
          { path: 'a', body: 'x' },
          { path: 'a/b.rego', body: POLICY },
        ]),
      'invalid_bundle',
      /lies under "a", which is a file/,
    ],
    [
      'an oversize entry',
      () => rawTarGz([{ path: 'big.rego', body: 'x'.repeat(2000) }]),
      'payload_too_large',
      /"big\.rego" is 2000 bytes, over the 1000-byte limit/,
      { maxEntryBytes: 1000 },
    ],
    [
      'too much content in total',
      () =>
        rawTarGz([
          { path: 'a.rego', body: 'x'.repeat(600) },
          { path: 'b.rego', body: 'x'.repeat(600) },
        ]),
      'payload_too_large',
      /more than 1000 bytes of content \(reached at "b\.rego"\)/,
      { maxBytes: 1000 },
    ],
    [
      'too many entries',
      () =>
        rawTarGz([
          { path: 'a.rego', body: POLICY },
          { path: 'b.rego', body: POLICY },
          { path: 'c.rego', body: POLICY },
        ]),
      'payload_too_large',
      /more than 2 entries \(at "c\.rego"\)/,
      { maxFiles: 2 },
    ],
    [
      'non-UTF-8 Rego',
      () => rawTarGz([{ path: 'bad.rego', body: Buffer.from([0x70, 0x61, 0xff, 0xfe, 0x0a]) }]),
      'invalid_bundle',
      /bad\.rego: Rego source is not valid UTF-8/,
    ],
    [
      'invalid data.json',
      () => rawTarGz([{ path: '/data.json', body: '{"a": ' }]),
      'invalid_bundle',
      /data\.json: not valid JSON/,
    ],
    [
      'a root data.json that is not an object',
      () => rawTarGz([{ path: '/data.json', body: '[1, 2]' }]),
      'invalid_bundle',
      /root data\.json must hold a JSON object/,
    ],
    [
      'conflicting data files',
      () =>
        rawTarGz([
          { path: '/data.json', body: '{"a": {"b": 1}}' },
          { path: '/a/b/data.json', body: '{"c": 2}' },
        ]),
      'invalid_bundle',
      /a\/b\/data\.json: data at \/a\/b conflicts/,
    ],
    [
      'YAML data',
      () => rawTarGz([{ path: '/data.yaml', body: 'a: 1' }]),
      'invalid_bundle',
      /data\.yaml: YAML data files are not supported/,
    ],
    [
      'a delta bundle',
      () => rawTarGz([{ path: '/patch.json', body: '{"data": []}' }]),
      'invalid_bundle',
      /delta bundles/,
    ],
    [
      'a manifest below the root',
      () => rawTarGz([{ path: '/sub/.manifest', body: '{}' }]),
      'invalid_bundle',
      /sub\/\.manifest: a manifest must be/,
    ],
    [
      'a manifest that is not JSON',
      () => rawTarGz([{ path: '/.manifest', body: 'revision: 1' }]),
      'invalid_bundle',
      /\.manifest: not valid JSON/,
    ],
    [
      'a manifest with a bad field',
      () => rawTarGz([manifest({ revision: 7 })]),
      'invalid_bundle',
      /"revision" must be a string/,
    ],
    [
      'overlapping roots',
      () => rawTarGz([manifest({ revision: '1', roots: ['envoy', 'envoy/authz'] })]),
      'invalid_bundle',
      /roots "envoy" and "envoy\/authz" overlap/,
    ],
    [
      'a module outside the roots',
      () => rawTarGz([manifest({ revision: '1', roots: ['other'] }), { path: '/p.rego', body: POLICY }]),
      'invalid_bundle',
      /do not permit package "envoy\/authz" of p\.rego/,
    ],
    [
      'data outside the roots',
      () =>
        rawTarGz([
          manifest({ revision: '1', roots: ['envoy'] }),
          { path: '/data.json', body: '{"users": {}}' },
        ]),
      'invalid_bundle',
      /do not permit data at \/users/,
    ],
    [
      'a wasm entry without its module',
      () => rawTarGz([manifest({ revision: '1', wasm: [{ entrypoint: 'a/b', module: '/policy.wasm' }] })]),
      'invalid_bundle',
      /refers to module "\/policy\.wasm", which is not in the bundle/,
    ],
    [
      'a wasm entrypoint outside the roots',
      () =>
        rawTarGz([
          manifest({ revision: '1', roots: ['a'], wasm: [{ entrypoint: 'b/c', module: '/policy.wasm' }] }),
          { path: '/policy.wasm', body: '\0asm' },
        ]),
      'invalid_bundle',
      /do not permit entrypoint "b\/c"/,
    ],
    [
      'bytes that are not gzip',
      () => Buffer.from('PK\x03\x04 this is a zip file, not a tarball'),
      'invalid_bundle',
      /not gzip-compressed/,
    ],
    [
      'gzip that is not a tar',
      () => gzipSync(Buffer.from('x'.repeat(1024))),
      'invalid_bundle',
      /bad checksum/,
    ],
    [
      'a truncated entry',
      () => rawTarGz([{ path: 'a.rego', body: 'x'.repeat(100), size: 5000 }], { end: false }),
      'invalid_bundle',
      /"a\.rego" is truncated/,
    ],
    [
      'a truncated gzip stream',
      () => rawTarGz([{ path: 'a.rego', body: POLICY }]).subarray(0, 30),
      'invalid_bundle',
      /not valid gzip/,
    ],
  ])('%s', (_name, make, code, message, limits) => {
    const err = readError(make(), { ...LIMITS, ...limits });
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
    expect(err.details.length).toBeGreaterThan(0);
  });

  it('stops inflating a gzip bomb at the limit instead of expanding it', () => {
    // 64 MiB of zeros behind one header compress to ~64 KiB.
    const bomb = gzipSync(
      Buffer.concat([
        rawTar([{ path: 'zeros.rego', body: '', size: 64 * 1024 * 1024 }], { end: false }),
        Buffer.alloc(64 * 1024 * 1024),
      ]),
    );
    expect(bomb.length).toBeLessThan(200 * 1024);
    const err = readError(bomb);
    expect(err.code).toBe('payload_too_large');
    expect(err.message).toMatch(/decompresses to more than \d+ bytes/);
  });
});

describe('readBundleArchive reads bundles the way OPA does', () => {
  it('merges nested data.json files at their directory paths', () => {
    const read = readBundleArchive(
      rawTarGz([
        { path: '/data.json', body: '{"a": {"x": 1}, "top": true}' },
        { path: '/a/b/data.json', body: '{"c": 2}' },
        { path: '/a/list/data.json', body: '[1, 2]' },
        { path: '/q/data.json', body: '"leaf"' },
      ]),
      LIMITS,
    );
    expect(read.data).toEqual({ a: { x: 1, b: { c: 2 }, list: [1, 2] }, top: true, q: 'leaf' });
  });

  it('keeps "__proto__" as an ordinary data key', () => {
    const read = readBundleArchive(
      rawTarGz([
        { path: '/data.json', body: '{"__proto__": {"polluted": true}}' },
        { path: '/__proto__/x/data.json', body: '{"y": 1}' },
      ]),
      LIMITS,
    );
    expect(Object.getPrototypeOf(read.data)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(Object.keys(read.data)).toEqual(['__proto__']);
    expect(JSON.parse(JSON.stringify(read.data))).toEqual(
      JSON.parse('{"__proto__": {"polluted": true, "x": {"y": 1}}}'),
    );
  });

  it('accepts "./" and "/" prefixes, directory entries, long paths and lists what it ignores', () => {
    const deep = `${'very-long-directory-name/'.repeat(8)}policy.rego`;
    const read = readBundleArchive(
      rawTarGz([
        { path: './', type: 'Directory' },
        { path: './envoy/', type: 'Directory' },
        { path: './envoy/authz/policy.rego', body: POLICY },
        { path: 'x.rego', pax: { path: deep }, body: 'package very_long_directory_name\n' },
        { path: '/README.md', body: '# docs' },
        { path: '/.signatures.json', body: '{}' },
      ]),
      LIMITS,
    );
    expect(Object.keys(read.modules).sort()).toEqual(['envoy/authz/policy.rego', deep]);
    expect(read.ignored).toEqual(['README.md', '.signatures.json']);
    expect(read.manifest).toEqual({ revision: '' });
    expect(read.wasm).toBeUndefined();
    expect(read.entrypoints).toBeUndefined();
  });

  it('round-trips what buildBundleArchive writes, wasm and entrypoints included', () => {
    const wasm = Buffer.from('\0asm\x01\0\0\0');
    const archive = buildBundleArchive({
      modules: { 'envoy/authz/policy.rego': POLICY },
      data: { users: { alice: { admin: true } } },
      wasm,
      entrypoints: ['data.envoy.authz.allow'],
      revision: '7',
    });
    const read = readBundleArchive(archive, LIMITS);
    expect(read.modules).toEqual({ 'envoy/authz/policy.rego': POLICY });
    expect(read.data).toEqual({ users: { alice: { admin: true } } });
    expect(Buffer.compare(read.wasm!, wasm)).toBe(0);
    expect(read.entrypoints).toEqual(['envoy/authz/allow']);
    expect(read.manifest).toEqual({
      revision: '7',
      roots: ['envoy/authz', 'users'],
      wasm: [{ entrypoint: 'envoy/authz/allow', module: '/policy.wasm' }],
      rego_version: 1,
    });
    expect(read.ignored).toEqual([]);
  });
});

describe("readBundleArchive with dataAs: 'json'", () => {
  const JSON_LIMITS = { ...LIMITS, dataAs: 'json' as const };
  const text = (bytes: Uint8Array) => Buffer.from(bytes).toString();

  it('returns the root data.json as it is, and the module, as views of one decompressed archive', () => {
    const body = '{"users": {"big": 123456789012345678901234567890, "alice": {"admin": true}}}';
    const archive = rawTarGz([
      { path: '/data.json', body },
      { path: '/policy.wasm', body: '\0asm\x01\0\0\0' },
      { path: '/.manifest', body: JSON.stringify({ revision: '1', roots: ['envoy', 'users'] }) },
    ]);
    const read = readBundleArchive(archive, JSON_LIMITS);
    expect(text(read.dataJson)).toBe(body);
    expect('data' in read).toBe(false);
    expect(read.wasm!.buffer).toBe(read.dataJson.buffer);
  });

  it('merges and serializes layouts with more than one data file, as the object form reads them', () => {
    const entries = [
      { path: '/data.json', body: '{"a": {"x": 1}, "top": true}' },
      { path: '/a/b/data.json', body: '{"c": 2}' },
    ];
    const read = readBundleArchive(rawTarGz(entries), JSON_LIMITS);
    expect(JSON.parse(text(read.dataJson))).toEqual(readBundleArchive(rawTarGz(entries), LIMITS).data);
    expect(text(readBundleArchive(rawTarGz([]), JSON_LIMITS).dataJson)).toBe('{}');
  });

  it.each([
    ['invalid JSON', '{"a": 1,}', /data\.json: not valid JSON \(expected a string key at byte 8\)/],
    ['a root that is not an object', '[1, 2]', /data\.json: the root data\.json must hold a JSON object/],
    ['a second document', '{"a": 1}{"b": 2}', /not valid JSON/],
  ])('refuses a root data.json holding %s, naming the file', (_name, body, message) => {
    let err: unknown;
    try {
      readBundleArchive(rawTarGz([{ path: '/data.json', body }]), JSON_LIMITS);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PortcullisError);
    expect((err as PortcullisError).code).toBe('invalid_bundle');
    expect((err as PortcullisError).message).toMatch(message);
    expect((err as PortcullisError).details).toEqual([expect.objectContaining({ file: 'data.json' })]);
  });

  it('skips a byte order mark, as JSON.parse through TextDecoder did', () => {
    const read = readBundleArchive(rawTarGz([{ path: '/data.json', body: '\ufeff{"a": 1}' }]), JSON_LIMITS);
    expect(text(read.dataJson)).toBe('{"a": 1}');
  });

  it('checks data kept as text against the roots, into keys that hold a root', () => {
    const manifest = (roots: string[]) => ({
      path: '/.manifest',
      body: JSON.stringify({ revision: '', roots }),
    });
    const read = (roots: string[], body: string) => () =>
      readBundleArchive(rawTarGz([manifest(roots), { path: '/data.json', body }]), JSON_LIMITS);
    expect(read(['users'], '{"users": {"a": 1}}')).not.toThrow();
    expect(read(['users'], '{"users": 1, "other": 2}')).toThrow(/do not permit data at \/other/);
    expect(read(['a/b'], '{"a": {"b": {"c": 1}}}')).not.toThrow();
    expect(read(['a/b'], '{"a": {"b": 1, "x": 2}}')).toThrow(/do not permit data at \/a\/x/);
    expect(read(['a/b'], '{"a": 1}')).toThrow(/do not permit data at \/a/);
  });
});

describe('gunzip sized from the gzip trailer', () => {
  const archive = () => rawTarGz([{ path: '/data.json', body: JSON.stringify({ pad: 'x'.repeat(50_000) }) }]);
  const withIsize = (isize: number) => {
    const bytes = Buffer.from(archive());
    bytes.writeUInt32LE(isize >>> 0, bytes.length - 4);
    return bytes;
  };

  it('inflates into one buffer of the announced size', () => {
    const bytes = archive();
    const read = readBundleArchive(bytes, { ...LIMITS, dataAs: 'json' });
    expect(read.dataJson.buffer.byteLength).toBe(bytes.readUInt32LE(bytes.length - 4) + 1);
  });

  it.each([
    ['too small', 100],
    ['too large but plausible', 200_000],
    ['beyond the limits', 0xffff_ffff],
    ['zero', 0],
  ])('refuses an archive whose trailer lies (%s) as invalid gzip', (_name, isize) => {
    const err = readError(withIsize(isize));
    expect(err.code).toBe('invalid_bundle');
    expect(err.message).toMatch(/not valid gzip: incorrect length check/);
  });
});
