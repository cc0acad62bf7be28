// Every stable error code is documented in the package README.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AUTHENTICATION_ERROR_CODES, AuthenticationError, InvalidResourceError } from '../src/errors.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('error codes', () => {
  it.each(Object.keys(AUTHENTICATION_ERROR_CODES))('%s has a row in the README table', (code) => {
    expect(readme).toMatch(new RegExp(`^\\|\\s*\`${code}\`\\s*\\|`, 'm'));
  });

  it('invalid_resource is documented', () => {
    expect(readme).toContain('code `invalid_resource`');
  });

  it('maps codes to HTTP and gRPC statuses', () => {
    expect(new AuthenticationError('expired', 'x')).toMatchObject({ httpStatus: 401, grpcStatus: 16 });
    expect(new AuthenticationError('wrong_audience', 'x')).toMatchObject({ httpStatus: 403, grpcStatus: 7 });
    expect(JSON.parse(JSON.stringify(new AuthenticationError('expired', 'gone')))).toEqual({
      code: 'expired',
      message: 'gone',
      details: [],
    });
    expect(JSON.parse(JSON.stringify(new InvalidResourceError([{ path: 'a', reason: 'b' }])))).toEqual({
      code: 'invalid_resource',
      message: 'a: b',
      details: [{ path: 'a', reason: 'b' }],
    });
    expect(new InvalidResourceError([{ path: 'a', reason: 'b' }])).toMatchObject({
      code: 'invalid_resource',
      httpStatus: 400,
      grpcStatus: 3,
      message: 'a: b',
    });
  });
});
