// compileWasm against the real `opa build`, bundle archive reading, and digest verification.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readBundleArchive } from '@portcullis/bundle';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileWasm, EngineError, sha256Hex, verifyDigest } from '../src/index.ts';
import { opaBin } from './fixtures.ts';

async function engineErrorOf(p: Promise<unknown> | (() => unknown)): Promise<EngineError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    expect(err).toBeInstanceOf(EngineError);
    return err as EngineError;
  }
  throw new Error('expected an EngineError');
}

describe('compileWasm', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'portcullis-compile-test-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('builds a bundle with policy.wasm, data, entrypoints, host builtins and digest; leaves no files', async () => {
    const out = await compileWasm({
      opaBin: opaBin(),
      modules: { 'authz/policy.rego': 'package a\nallow if io.jwt.decode(input.t)[1].sub == data.who\n' },
      data: { who: 'alice' },
      entrypoints: ['a/allow'],
      tmpDir: work,
    });
    expect(Buffer.from(out.wasm.subarray(0, 4)).toString('latin1')).toBe('\0asm');
    expect(out.builtins).toEqual(['io.jwt.decode']);
    expect(out.entrypoints).toEqual(['a/allow']);
    expect(out.data).toEqual({ who: 'alice' });
    expect(out.digest).toBe(sha256Hex(out.bundle));
    const archive = readBundleArchive(out.bundle, { maxBytes: 1 << 24, maxFiles: 100 });
    expect(Object.keys(archive.modules)).toEqual(['authz/policy.rego']);
    expect(archive.wasm?.length).toBeGreaterThan(0);
    expect(archive.ignored).toEqual([]);
    expect(await readdir(work)).toEqual([]);
  });

  it('is reproducible: the same sources give the same digest', async () => {
    const build = () =>
      compileWasm({
        opaBin: opaBin(),
        modules: { 'p.rego': 'package p\nallow := true\n' },
        data: { a: [1, 2] },
        entrypoints: ['p/allow'],
        tmpDir: work,
      });
    const [a, b] = [await build(), await build()];
    expect(a.digest).toBe(b.digest);
  });

  it.each([
    [{ 'p.rego': 'package p\nallow if {' }, ['p/allow'], 'compile_failed', /rego_parse_error/],
    [{ 'p.rego': 'package p\nallow if x == 1\n' }, ['p/allow'], 'compile_failed', /rego_unsafe_var_error/],
    [{ 'p.rego': 'package p\nallow := true\n' }, ['p/deny'], 'compile_failed', /entrypoint/],
    [{ 'p.rego': 'package p\nallow := true\n' }, [], 'compile_failed', /entrypoint/],
    [{ '../escape.rego': 'package p\n' }, ['p'], 'compile_failed', /bad module name/],
    [{ 'notrego.txt': 'package p\n' }, ['p'], 'compile_failed', /bad module name/],
  ])('rejects %j (entrypoints %j) with %s', async (modules, entrypoints, code, message) => {
    const err = await engineErrorOf(compileWasm({ opaBin: opaBin(), modules, entrypoints, tmpDir: work }));
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
    expect(await readdir(work)).toEqual([]);
  });

  it('kills opa on timeout and still cleans up', async () => {
    const err = await engineErrorOf(
      compileWasm({
        opaBin: opaBin(),
        modules: { 'p.rego': 'package p\nallow := true\n' },
        entrypoints: ['p/allow'],
        timeoutMs: 1,
        tmpDir: work,
      }),
    );
    expect(err.code).toBe('compile_timeout');
    expect(await readdir(work)).toEqual([]);
  });

  it('reports a missing opa binary', async () => {
    const err = await engineErrorOf(
      compileWasm({
        opaBin: join(work, 'no-such-opa'),
        modules: { 'p.rego': 'package p\n' },
        entrypoints: ['p'],
        tmpDir: work,
      }),
    );
    expect(err.code).toBe('compile_failed');
    expect(await readdir(work)).toEqual([]);
  });
});

describe('verifyDigest', () => {
  const bytes = Buffer.from('bundle bytes');
  const digest = sha256Hex(bytes);

  it.each([
    ['the right digest', digest, true],
    ['the right digest in upper case', digest.toUpperCase(), true],
    ['another digest', sha256Hex(Buffer.from('other')), false],
    ['a truncated digest', digest.slice(0, 63), false],
    ['not hex', 'z'.repeat(64), false],
    ['empty', '', false],
  ])('%s → %s', async (_name, expected, ok) => {
    if (ok) expect(() => verifyDigest(bytes, expected)).not.toThrow();
    else expect((await engineErrorOf(() => verifyDigest(bytes, expected))).code).toBe('digest_mismatch');
  });
});
