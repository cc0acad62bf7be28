import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, PortcullisError, toPortcullisError } from '../src/errors.ts';

describe('PortcullisError', () => {
  it.each([
    ['validation_failed', 400, status.INVALID_ARGUMENT],
    ['unauthenticated', 401, status.UNAUTHENTICATED],
    ['forbidden', 403, status.PERMISSION_DENIED],
    ['not_found', 404, status.NOT_FOUND],
    ['precondition_failed', 412, status.FAILED_PRECONDITION],
    ['payload_too_large', 413, status.RESOURCE_EXHAUSTED],
    ['rego_test_failed', 422, status.FAILED_PRECONDITION],
    ['unavailable', 503, status.UNAVAILABLE],
  ] as const)('%s maps to HTTP %d and gRPC %d', (code, http, grpc) => {
    const err = new PortcullisError(code, 'm');
    expect(err.httpStatus).toBe(http);
    expect(err.grpcStatus).toBe(grpc);
    expect(err.toJSON()).toEqual({ code, message: 'm', details: [] });
  });

  it('keeps the cause and wraps foreign errors as internal', () => {
    const cause = new TypeError('boom');
    const wrapped = toPortcullisError(cause);
    expect(wrapped.code).toBe('internal');
    expect(wrapped.cause).toBe(cause);
    expect(wrapped.message).not.toContain('boom');
  });

  it('has snake_case codes and a description for each', () => {
    for (const [code, spec] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^[a-z]+(_[a-z]+)*$/);
      expect(spec.description.length).toBeGreaterThan(10);
    }
  });
});
