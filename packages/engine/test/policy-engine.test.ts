// PolicyEngine: loading, idempotence, atomic swap and its ordering, routing of decision paths, errors.
import { beforeAll, describe, expect, it } from 'vitest';
import { EngineError, loadRevision, PolicyEngine, type Revision, unsupportedBuiltins } from '../src/index.ts';
import { compileRevision } from './fixtures.ts';

const versioned = (v: string): string => `package svc.authz
default allow := false
allow if input.user == "admin"
version := ${JSON.stringify(v)}
`;

async function expectEngineError(p: Promise<unknown> | (() => unknown), code: string): Promise<EngineError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(EngineError);
  expect((err as EngineError).code).toBe(code);
  return err as EngineError;
}

describe('PolicyEngine', () => {
  let v1: Revision;
  let v2: Revision;
  let v3: Revision;
  const eps = ['svc/authz/allow', 'svc/authz/version', 'svc/authz'];

  beforeAll(async () => {
    v1 = await compileRevision('svc', versioned('one'), eps, { revision: 1 });
    v2 = await compileRevision('svc', versioned('two'), eps, { revision: 2 });
    v3 = await compileRevision('svc', versioned('three'), eps, { revision: 3 });
  });

  it('loads a revision once and treats the same digest as a no-op', async () => {
    const engine = new PolicyEngine();
    expect(await engine.load(v1)).toBe(true);
    expect(await engine.load({ ...v1, revision: 9 })).toBe(false);
    expect(engine.loaded()['svc']).toMatchObject({ revision: 1, digest: v1.digest, entrypoints: eps });
    expect(engine.loaded()['svc']!.loadedAt).toBeInstanceOf(Date);
    expect(engine.pendingLoads()).toBe(0);
  });

  it.each([
    ['svc/authz/allow'],
    ['svc.authz.allow'],
    ['data.svc.authz.allow'],
    ['/svc/authz/allow/'],
    ['data/svc/authz/allow'],
    [' svc/authz/allow '],
  ])('routes %j to the entrypoint', async (path) => {
    const engine = new PolicyEngine();
    await engine.load(v1);
    const d = engine.evaluate(path, { user: 'admin' });
    expect(d).toMatchObject({ result: true, bundle: 'svc', revision: 1, digest: v1.digest });
    expect(d.evalNs).toBeGreaterThan(0);
  });

  it.each([
    ['svc/authz/allow', { user: 'admin' }, true],
    ['svc/authz/allow', { user: 'bob' }, false],
    ['svc/authz/allow', undefined, false],
    ['svc/authz/version', {}, 'one'],
    ['svc/authz', { user: 'admin' }, { allow: true, version: 'one' }],
  ])('evaluates %s on %j', async (path, input, want) => {
    const engine = new PolicyEngine();
    await engine.load(v1);
    expect(engine.evaluate(path, input).result).toEqual(want);
  });

  it('keeps undefined distinct from false, and big integers exact in JSON form', async () => {
    const rev = await compileRevision(
      'u',
      'package u\nmaybe if input.x == 1\nno := false\nbig := 12345678901234567890\n',
      ['u/maybe', 'u/no', 'u/big'],
    );
    const engine = new PolicyEngine();
    await engine.load(rev);
    expect(engine.evaluate('u/maybe', { x: 2 }).result).toBeUndefined();
    expect(engine.evaluate('u/maybe', { x: 1 }).result).toBe(true);
    expect(engine.evaluate('u/no', {}).result).toBe(false);
    expect(engine.evaluateJson('u/maybe', '{"x":2}').resultJson).toBeUndefined();
    expect(engine.evaluateJson('u/big').resultJson).toBe('12345678901234567890');
  });

  it('serves the old revision until the new one is instantiated, then swaps', async () => {
    const engine = new PolicyEngine();
    await engine.load(v1);
    const loading = engine.load(v2);
    // The load has not had a turn of the event loop yet: evaluations still see v1, whole.
    expect(engine.evaluate('svc/authz', {}).result).toEqual({ allow: false, version: 'one' });
    expect(engine.evaluate('svc/authz/version').revision).toBe(1);
    expect(await loading).toBe(true);
    expect(engine.evaluate('svc/authz/version')).toMatchObject({
      result: 'two',
      revision: 2,
      digest: v2.digest,
    });
    expect(engine.pendingLoads()).toBe(0);
  });

  it.each([
    [[1, 2, 3], 3],
    [[3, 1], 1],
    [[2, 3, 2], 2],
    [[1, 1, 1], 1],
  ])('applies concurrent loads %j in call order (ends on revision %i)', async (order, last) => {
    const revs = [v1, v2, v3];
    const engine = new PolicyEngine();
    const results = await Promise.all(order.map((n) => engine.load(revs[n - 1]!)));
    expect(engine.loaded()['svc']!.revision).toBe(last);
    expect(results[0]).toBe(true);
    expect(engine.pendingLoads()).toBe(0);
  });

  it('keeps serving the previous revision when a load fails', async () => {
    const engine = new PolicyEngine();
    await engine.load(v1);
    await expectEngineError(
      engine.load({ ...v2, wasm: new Uint8Array([0, 97, 115, 109, 9, 9]) }),
      'invalid_wasm',
    );
    await expectEngineError(engine.load({ ...v2, entrypoints: ['svc/authz/nope'] }), 'entrypoint_not_found');
    expect(engine.evaluate('svc/authz/version').result).toBe('one');
    expect(engine.pendingLoads()).toBe(0);
  });

  it('rejects a bundle that declares another bundle’s entrypoint, and unloads', async () => {
    const engine = new PolicyEngine();
    await engine.load(v1);
    await expectEngineError(engine.load({ ...v2, bundle: 'other' }), 'entrypoint_conflict');
    expect(Object.keys(engine.loaded())).toEqual(['svc']);
    expect(await engine.unload('svc')).toBe(true);
    expect(await engine.unload('svc')).toBe(false);
    await expectEngineError(() => engine.evaluate('svc/authz/allow', {}), 'entrypoint_not_found');
    expect(await engine.load({ ...v2, bundle: 'other' })).toBe(true);
  });

  it('reuses a retired revision’s memory without leaking its state into the next revision', async () => {
    // Same module, different data: the second load reuses the first's memory and compiled module.
    const rego = 'package m\nroles := data.roles\nhas(r) if data.roles[r]\nok if has(input.role)\n';
    const big = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`role-${i}`, { n: i }]));
    const a = await compileRevision('m', rego, ['m/roles', 'm/ok'], { data: { roles: big }, revision: 1 });
    const b = await compileRevision('m', rego, ['m/roles', 'm/ok'], {
      data: { roles: { 'role-7': { n: 'b' } } },
      revision: 2,
    });
    const swapped = new PolicyEngine();
    for (const rev of [a, b, a, b]) await swapped.load(rev);
    const fresh = new PolicyEngine();
    await fresh.load(b);
    for (const [path, input] of [
      ['m/roles', {}],
      ['m/ok', { role: 'role-7' }],
      ['m/ok', { role: 'role-4999' }],
      ['m/ok', { role: 'role-1' }],
    ] as const) {
      expect(swapped.evaluateJson(path, JSON.stringify(input))).toMatchObject({
        resultJson: fresh.evaluateJson(path, JSON.stringify(input)).resultJson,
        revision: 2,
      });
    }
    expect(swapped.evaluate('m/ok', { role: 'role-4999' }).result).toBeUndefined();
    await swapped.load(a);
    expect(swapped.evaluate('m/ok', { role: 'role-4999' }).result).toBe(true);
  });

  it('retires the replaced instance: a reference kept past the swap refuses to evaluate', async () => {
    const engine = new PolicyEngine();
    await engine.load(v1);
    const old = engine.policyFor('svc/authz/version')!;
    expect(old.evaluate('svc/authz/version').result).toBe('one');
    await engine.load(v2);
    await expectEngineError(() => old.evaluate('svc/authz/version'), 'bundle_not_loaded');
    expect(engine.evaluate('svc/authz/version').result).toBe('two');
    // A load that fails keeps the spare memory usable for the next one.
    await expectEngineError(engine.load({ ...v1, entrypoints: ['svc/authz/nope'] }), 'entrypoint_not_found');
    await engine.load(v3);
    expect(engine.evaluate('svc/authz', { user: 'admin' }).result).toEqual({ allow: true, version: 'three' });
  });

  it('loads data given as JSON text or bytes like the same data as an object', async () => {
    const engine = new PolicyEngine();
    const rev = await compileRevision('d', 'package d\nv := data.v\n', ['d/v'], { data: { v: 1 } });
    await engine.load({ ...rev, data: undefined, dataJson: '{"v":12345678901234567890}' });
    expect(engine.evaluateJson('d/v').resultJson).toBe('12345678901234567890');
    await engine.load({
      ...rev,
      digest: 'b'.repeat(64),
      data: undefined,
      dataJson: Buffer.from('{"v":"é"}'),
    });
    expect(engine.evaluate('d/v').result).toBe('é');
  });

  it.each([
    ['svc/authz/deny', 'entrypoint_not_found'],
    ['', 'invalid_path'],
    ['svc//allow', 'invalid_path'],
    ['data', 'invalid_path'],
  ])('fails %j with %s', async (path, code) => {
    const engine = new PolicyEngine();
    await engine.load(v1);
    await expectEngineError(() => engine.evaluate(path, {}), code);
  });

  it('rejects input that is not JSON', async () => {
    const engine = new PolicyEngine();
    await engine.load(v1);
    await expectEngineError(() => engine.evaluate('svc/authz/allow', { n: 1n }), 'invalid_input');
  });

  it('reports conflicting rule values as eval_failed', async () => {
    const rev = await compileRevision('c', 'package c\nx := 1 if input.a\nx := 2 if input.b\n', ['c/x']);
    const engine = new PolicyEngine();
    await engine.load(rev);
    expect(engine.evaluate('c/x', { a: true }).result).toBe(1);
    await expectEngineError(() => engine.evaluate('c/x', { a: true, b: true }), 'eval_failed');
    // The instance stays usable after an aborted evaluation.
    expect(engine.evaluate('c/x', { b: true }).result).toBe(2);
  });
});

describe('builtins the engine cannot run', () => {
  const rego =
    'package h\nr := http.send({"method": "GET", "url": input.url}).status_code\nj := io.jwt.decode(input.t)\n';

  it('are refused at load time with builtin_unsupported, naming them', async () => {
    const rev = await compileRevision('h', rego, ['h/r']);
    const err = await expectEngineError(loadRevision(rev), 'builtin_unsupported');
    expect(err.details).toEqual({ builtins: ['http.send'] });
    expect(unsupportedBuiltins(rev.wasm)).toEqual(['http.send']);
  });

  it.each([
    [['io.jwt.decode', 'time.now_ns'], []],
    [
      ['http.send', 'io.jwt.decode', 'net.lookup_ip_addr'],
      ['http.send', 'net.lookup_ip_addr'],
    ],
    [[], []],
  ])('unsupportedBuiltins(%j) = %j', (names, want) => {
    expect(unsupportedBuiltins(names)).toEqual(want);
  });

  it('strict builtin errors turn a failing builtin into builtin_error', async () => {
    const rev = await compileRevision('s', 'package s\nd := io.jwt.decode(input.t)\n', ['s/d']);
    const lenient = new PolicyEngine();
    const strict = new PolicyEngine({ strictBuiltinErrors: true });
    await lenient.load(rev);
    await strict.load(rev);
    expect(lenient.evaluate('s/d', { t: 'not-a-token' }).result).toBeUndefined();
    await expectEngineError(() => strict.evaluate('s/d', { t: 'not-a-token' }), 'builtin_error');
  });
});
