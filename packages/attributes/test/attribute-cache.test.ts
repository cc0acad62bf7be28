// The attribute cache: hits without fetches, batched and shared misses, LRU bound, TTL bound, invalidation races, failures.
import { describe, expect, it } from 'vitest';
import { AttributeCache } from '../src/attribute-cache.ts';
import { MemorySource } from './memory-source.ts';

function setup(options: { maxEntries?: number; ttlMs?: number; maxBatchKeys?: number } = {}) {
  const source = new MemorySource();
  let ms = 1_000_000;
  const clock = { now: () => ms, advance: (d: number) => (ms += d) };
  const cache = new AttributeCache({ source, now: clock.now, ...options });
  return { source, cache, clock };
}

describe('AttributeCache', () => {
  it('fetches a miss once, then answers from memory', async () => {
    const { source, cache } = setup();
    source.set('user', 'alice', { role: 'admin' });
    expect(await cache.get('user', 'alice')).toEqual({ attributes: { role: 'admin' }, version: 1 });
    expect(await cache.get('user', 'alice')).toEqual({ attributes: { role: 'admin' }, version: 1 });
    expect(cache.peek('user', 'alice')).toEqual({ attributes: { role: 'admin' }, version: 1 });
    expect(source.calls).toHaveLength(1);
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 1, fetches: 1, size: 1 });
  });

  it('caches a missing record too', async () => {
    const { source, cache } = setup();
    expect(await cache.get('user', 'ghost')).toBeUndefined();
    expect(cache.peek('user', 'ghost')).toBeNull();
    expect(await cache.get('user', 'ghost')).toBeUndefined();
    expect(source.calls).toHaveLength(1);
  });

  it('batches concurrent misses into one call and shares a key between callers', async () => {
    const { source, cache } = setup();
    for (const id of ['a', 'b', 'c']) source.set('user', id, { id });
    const answers = await Promise.all([
      cache.get('user', 'a'),
      cache.get('user', 'a'),
      cache.getMany([
        { kind: 'user', id: 'b' },
        { kind: 'user', id: 'c' },
        { kind: 'user', id: 'a' },
      ]),
    ]);
    expect(answers[0]).toEqual(answers[1]);
    expect(answers[2].map((v) => v?.attributes['id'])).toEqual(['b', 'c', 'a']);
    expect(source.calls).toEqual([
      [
        { kind: 'user', id: 'a' },
        { kind: 'user', id: 'b' },
        { kind: 'user', id: 'c' },
      ],
    ]);
  });

  it('splits a large miss set into calls of at most maxBatchKeys', async () => {
    const { source, cache } = setup({ maxBatchKeys: 10 });
    await cache.getMany(Array.from({ length: 25 }, (_, i) => ({ kind: 'doc', id: `d${i}` })));
    expect(source.calls.map((c) => c.length)).toEqual([10, 10, 5]);
  });

  it('keeps at most maxEntries, dropping entries nobody used for a generation (half of maxEntries)', async () => {
    const { source, cache } = setup({ maxEntries: 4 });
    for (const id of ['a', 'b', 'c']) await cache.get('k', id);
    await cache.get('k', 'a'); // a is now the most recently used
    await cache.get('k', 'd'); // evicts b, unused since a and b filled the first generation
    expect(cache.stats()).toMatchObject({ size: 3, evictions: 1 });
    expect(cache.peek('k', 'b')).toBeUndefined();
    expect(cache.peek('k', 'a')).not.toBeUndefined();
    expect(source.keysFetched).toBe(4);
    for (let i = 0; i < 100; i++) await cache.get('k', `x${i}`);
    expect(cache.stats().size).toBeLessThanOrEqual(4);
  });

  it.each([
    ['just before the TTL', 29_999, 1],
    ['at the TTL', 30_000, 2],
    ['long after the TTL', 3_600_000, 2],
  ])(
    'serves an entry %s without a fetch only while it is younger than the TTL',
    async (_what, age, calls) => {
      const { source, cache, clock } = setup({ ttlMs: 30_000 });
      source.set('user', 'x', { v: 1 });
      await cache.get('user', 'x');
      source.set('user', 'x', { v: 2 });
      clock.advance(age);
      const value = await cache.get('user', 'x');
      expect(source.calls).toHaveLength(calls);
      expect(value?.attributes['v']).toBe(calls === 1 ? 1 : 2);
    },
  );

  it('counts the TTL from when the fetch started, not when it ended', async () => {
    const { source, cache, clock } = setup({ ttlMs: 1000 });
    let open!: () => void;
    source.gate = new Promise((resolve) => {
      open = resolve;
    });
    const pending = cache.get('user', 'slow');
    await Promise.resolve();
    clock.advance(800);
    open();
    await pending;
    clock.advance(200);
    expect(cache.peek('user', 'slow')).toBeUndefined();
  });

  it('drops entries that change events name', async () => {
    const { source, cache } = setup();
    source.set('user', 'a', { v: 1 });
    await cache.get('user', 'a');
    source.set('user', 'a', { v: 2 });
    cache.invalidate([{ kind: 'user', id: 'a' }]);
    expect((await cache.get('user', 'a'))?.attributes['v']).toBe(2);
    expect(cache.stats().invalidations).toBe(1);
  });

  it('does not cache an answer that a change event overtook', async () => {
    const { source, cache } = setup();
    source.set('user', 'a', { v: 1 });
    let open!: () => void;
    source.gate = new Promise((resolve) => {
      open = resolve;
    });
    const inFlight = cache.get('user', 'a');
    await Promise.resolve();
    source.set('user', 'a', { v: 2 });
    cache.invalidate([{ kind: 'user', id: 'a' }]);
    open();
    expect((await inFlight)?.attributes['v']).toBe(1);
    source.gate = undefined;
    expect(cache.peek('user', 'a')).toBeUndefined();
    expect((await cache.get('user', 'a'))?.attributes['v']).toBe(2);
  });

  it('rejects the callers of a failed fetch and caches nothing for them', async () => {
    const { source, cache } = setup();
    source.failWith = new Error('pip down');
    await expect(
      cache.getMany([
        { kind: 'user', id: 'a' },
        { kind: 'user', id: 'b' },
      ]),
    ).rejects.toThrow('pip down');
    source.failWith = undefined;
    source.set('user', 'a', { ok: true });
    expect(await cache.get('user', 'a')).toMatchObject({ attributes: { ok: true } });
  });

  it.each([
    ['maxEntries', { maxEntries: 0 }],
    ['ttlMs', { ttlMs: -1 }],
    ['maxBatchKeys', { maxBatchKeys: 1.5 }],
  ])('refuses a bad %s', (_what, options) => {
    expect(() => new AttributeCache({ source: new MemorySource(), ...options })).toThrow(RangeError);
  });
});
