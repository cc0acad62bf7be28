// SPIFFE ID parsing per the SPIFFE-ID spec and the /ns/<ns>/sa/<sa> workload form.
import { describe, expect, it } from 'vitest';
import { formatWorkloadSpiffeId, parseSpiffeId, parseWorkloadSpiffeId } from '../src/spiffe-id.ts';

describe('parseSpiffeId', () => {
  it.each([
    ['spiffe://cluster.local', 'cluster.local', ''],
    ['spiffe://example.org/ns/default/sa/web', 'example.org', '/ns/default/sa/web'],
    ['spiffe://a-b_c.9/Path.With-Mixed_Case', 'a-b_c.9', '/Path.With-Mixed_Case'],
    ['spiffe://td/...a/..b', 'td', '/...a/..b'],
  ])('accepts %s', (id, trustDomain, path) => {
    expect(parseSpiffeId(id)).toEqual({ id, trustDomain, path });
  });

  it.each([
    ['https://example.org/ns/a/sa/b', 'scheme'],
    ['SPIFFE://example.org/ns/a/sa/b', 'scheme'],
    ['spiffe://', 'trust domain is empty'],
    ['spiffe:///ns/a', 'trust domain is empty'],
    ['spiffe://Example.org/ns/a', 'lowercase'],
    ['spiffe://example.org:8443/ns/a', 'port or user info'],
    ['spiffe://user@example.org/ns/a', 'port or user info'],
    ['spiffe://example.org/', 'trailing'],
    ['spiffe://example.org//a', 'empty segment'],
    ['spiffe://example.org/ns/./a', '"." or ".."'],
    ['spiffe://example.org/ns/../a', '"." or ".."'],
    ['spiffe://example.org/ns/a?x=1', 'no query'],
    ['spiffe://example.org/ns/a#frag', 'no query'],
    ['spiffe://example.org/ns/%61', 'percent'],
    [`spiffe://${'a'.repeat(256)}/x`, 'longer than 255'],
    [`spiffe://td/${'a'.repeat(2048)}`, 'longer than 2048'],
  ])('rejects %s', (id, why) => {
    expect(() => parseSpiffeId(id)).toThrow(
      expect.objectContaining({ code: 'spiffe_id_invalid', message: expect.stringContaining(why) }),
    );
  });
});

describe('workload SPIFFE IDs', () => {
  it('parses /ns/<ns>/sa/<sa>', () => {
    expect(parseWorkloadSpiffeId('spiffe://td/ns/shop/sa/cart')).toEqual({
      spiffeId: 'spiffe://td/ns/shop/sa/cart',
      trustDomain: 'td',
      namespace: 'shop',
      serviceAccount: 'cart',
    });
  });

  it.each([
    'spiffe://td',
    'spiffe://td/ns/a',
    'spiffe://td/ns/a/sa',
    'spiffe://td/ns/a/sa/b/c',
    'spiffe://td/sa/a/ns/b',
    'spiffe://td/x/a/sa/b',
  ])('rejects %s', (id) => {
    expect(() => parseWorkloadSpiffeId(id, 'csr_bad_san')).toThrow(
      expect.objectContaining({ code: 'csr_bad_san' }),
    );
  });

  it('formats and validates', () => {
    expect(formatWorkloadSpiffeId({ trustDomain: 'td', namespace: 'a', serviceAccount: 'b' })).toBe(
      'spiffe://td/ns/a/sa/b',
    );
    expect(() =>
      formatWorkloadSpiffeId({ trustDomain: 'td', namespace: 'a/b', serviceAccount: 'c' }),
    ).toThrow(expect.objectContaining({ code: 'spiffe_id_invalid' }));
  });
});
