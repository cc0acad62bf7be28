import type { PortcullisError } from '@portcullis/runtime';
import { describe, expect, it } from 'vitest';
import { entrypointRef, normalizeEntrypoint, normalizeEntrypoints } from '../src/index.ts';

describe('normalizeEntrypoint', () => {
  it.each([
    ['envoy.authz.allow', 'envoy/authz/allow'],
    ['data.envoy.authz.allow', 'envoy/authz/allow'],
    ['/envoy/authz/allow', 'envoy/authz/allow'],
    ['envoy/authz/allow', 'envoy/authz/allow'],
    ['envoy/authz/allow/', 'envoy/authz/allow'],
    ['envoy', 'envoy'],
    ['teams/edge-proxy/allow', 'teams/edge-proxy/allow'],
    ['data/x', 'data/x'],
  ])('%s → %s', (input, expected) => {
    expect(normalizeEntrypoint(input)).toBe(expected);
  });

  it.each([
    ['', /is empty/],
    ['data', /whole data document/],
    ['envoy..allow', /empty segment/],
    ['envoy//allow', /empty path segment/],
    ['envoy.edge-proxy.allow', /not a Rego identifier/],
    ['envoy/../allow', /not a valid name/],
    ['envoy.authz["allow"]', /not a Rego identifier/],
    ['a b', /not a Rego identifier/],
  ])('rejects %j', (input, reason) => {
    try {
      normalizeEntrypoint(input);
      expect.unreachable();
    } catch (err) {
      expect((err as PortcullisError).code).toBe('validation_failed');
      expect((err as PortcullisError).message).toMatch(reason);
      expect((err as PortcullisError).details).toEqual([
        expect.objectContaining({ field: 'entrypoints', entrypoint: input }),
      ]);
    }
  });

  it('deduplicates keeping the first position', () => {
    expect(normalizeEntrypoints(['b.allow', 'a/allow', 'data.b.allow'])).toEqual(['b/allow', 'a/allow']);
  });

  it.each([
    ['envoy/authz/allow', 'data.envoy.authz.allow'],
    ['teams/edge-proxy/allow', 'data.teams["edge-proxy"].allow'],
  ])('entrypointRef(%s) = %s', (input, ref) => {
    expect(entrypointRef(input)).toBe(ref);
  });
});
