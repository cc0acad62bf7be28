// Every check is reported once with its outcome and the status the client gets, in both modes, and counted in the metrics.
import { type Logger, Registry } from '@portcullis/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CheckReport,
  checkMetrics,
  checkObservers,
  createHttpAuthorizer,
  type DecideFn,
  denyResponse,
  failOpenResponse,
  NoDecisionError,
  responseHttpStatus,
} from '../src/index.ts';
import { type Harness, startAuthorizationServer } from './grpc-harness.ts';

/** Answers the result in the `x-result` header; throws for `x-throw`. */
const decide: DecideFn = async (input) => {
  const headers = (
    input.attributes?.['request'] as { http?: { headers?: Record<string, string> } } | undefined
  )?.http?.headers;
  if (headers?.['x-throw']) throw new Error('no decision');
  return { result: JSON.parse(headers?.['x-result'] ?? 'null'), decisionId: 'dec-7' };
};

const request = (headers: Record<string, string>, path = '/') => ({
  attributes: { request: { http: { path, headers } } },
});

const CASES: [string, Record<string, string>, string, Partial<CheckReport>][] = [
  [
    'a boolean allow',
    { 'x-result': 'true' },
    '/',
    { outcome: 'allowed', httpStatus: 200, decisionId: 'dec-7' },
  ],
  ['a boolean deny', { 'x-result': 'false' }, '/', { outcome: 'denied', httpStatus: 403 }],
  [
    'a deny with a status',
    { 'x-result': '{"allowed":false,"http_status":401}' },
    '/',
    { outcome: 'denied', httpStatus: 401 },
  ],
  [
    'an invalid result',
    { 'x-result': '{"allowed":"no"}' },
    '/',
    { outcome: 'failed_closed', httpStatus: 403, decisionId: 'dec-7' },
  ],
  ['decide failing', { 'x-throw': '1' }, '/', { outcome: 'failed_closed', httpStatus: 403 }],
  ['an unparsable path', { 'x-result': 'true' }, '/%zz', { outcome: 'bad_request', httpStatus: 400 }],
];

describe('reports over gRPC', () => {
  let harness: Harness;
  const reports: CheckReport[] = [];
  beforeAll(async () => {
    harness = await startAuthorizationServer({ decide, onError: () => {}, onCheck: (r) => reports.push(r) });
  });
  afterAll(() => harness.close());

  it.each(CASES)('%s', async (_name, headers, path, expected) => {
    reports.length = 0;
    await harness.check(request(headers, path));
    expect(reports).toEqual([
      {
        ...expected,
        decisionId: expected.decisionId ?? expect.any(String),
        durationSeconds: expect.any(Number),
      },
    ]);
    expect(reports[0]!.durationSeconds).toBeGreaterThanOrEqual(0);
  });
});

describe('reports in HTTP mode', () => {
  const reports: CheckReport[] = [];
  const authorize = createHttpAuthorizer({ decide, onError: () => {}, onCheck: (r) => reports.push(r) });

  it.each(CASES)('%s', async (_name, headers, path, expected) => {
    reports.length = 0;
    await authorize({ method: 'GET', path, headers }, { signal: new AbortController().signal });
    expect(reports).toEqual([
      {
        ...expected,
        decisionId: expected.decisionId ?? expect.any(String),
        durationSeconds: expect.any(Number),
      },
    ]);
  });

  it('a check whose caller went away is reported cancelled', async () => {
    reports.length = 0;
    const controller = new AbortController();
    controller.abort();
    await authorize(
      { method: 'GET', path: '/', headers: { 'x-result': 'true' } },
      { signal: controller.signal },
    );
    expect(reports).toMatchObject([{ outcome: 'cancelled', httpStatus: 0 }]);
  });
});

describe('responseHttpStatus', () => {
  it.each([
    [failOpenResponse('d'), 200],
    [denyResponse(401, 'x'), 401],
    [denyResponse(302, 'x'), 302],
    [{ status: { code: 7 }, dynamic_metadata: null }, 403],
    [{ status: null, dynamic_metadata: null }, 403],
  ])('%#: %i', (response, status) => {
    expect(responseHttpStatus(response)).toBe(status);
  });
});

describe('checkMetrics', () => {
  it('counts checks by mode, outcome and status, their latency, and failures by reason', async () => {
    const registry = new Registry();
    const metrics = checkMetrics(registry);
    // A second instance on the same registry shares the series rather than failing to register.
    checkMetrics(registry);
    metrics.check('grpc', { outcome: 'allowed', httpStatus: 200, decisionId: 'a', durationSeconds: 0.0001 });
    metrics.check('grpc', { outcome: 'allowed', httpStatus: 200, decisionId: 'b', durationSeconds: 0.0002 });
    metrics.check('http', {
      outcome: 'failed_closed',
      httpStatus: 403,
      decisionId: 'c',
      durationSeconds: 0.01,
    });
    metrics.failure('http', { kind: 'decide', error: new Error('x'), decisionId: 'c', outcome: 'deny' });
    const text = await registry.metrics();
    expect(text).toContain('portcullis_ext_authz_checks_total{mode="grpc",outcome="allowed",status="200"} 2');
    expect(text).toContain(
      'portcullis_ext_authz_checks_total{mode="http",outcome="failed_closed",status="403"} 1',
    );
    expect(text).toContain(
      'portcullis_ext_authz_check_duration_seconds_count{mode="grpc",outcome="allowed"} 2',
    );
    expect(text).toContain('portcullis_ext_authz_check_failures_total{mode="http",reason="decide_error"} 1');
  });
});

describe('checkObservers', () => {
  it('counts each check and failure, and logs failures at a level that fits who is at fault', async () => {
    const registry = new Registry();
    const lines: [string, Record<string, unknown>, string][] = [];
    const at = (level: string) => (entry: Record<string, unknown>, message: string) =>
      lines.push([level, entry, message]);
    const logger = { debug: at('debug'), info: at('info'), warn: at('warn') } as unknown as Logger;
    const { onCheck, onError } = checkObservers(checkMetrics(registry), logger, 'http');
    onCheck({ outcome: 'denied', httpStatus: 401, decisionId: 'a', durationSeconds: 0.001 });
    onError({
      kind: 'decide',
      error: new NoDecisionError('timeout', 'slow'),
      decisionId: 'b',
      outcome: 'deny',
    });
    onError({ kind: 'request_parse', error: new Error('bad escape'), decisionId: 'c', outcome: 'deny' });
    onError({ kind: 'cancelled', error: new Error('gone'), decisionId: '', outcome: 'none' });
    expect(lines.map(([level, entry]) => [level, entry.reason])).toEqual([
      ['warn', 'timeout'],
      ['info', 'request_parse'],
      ['debug', 'cancelled'],
    ]);
    const text = await registry.metrics();
    expect(text).toContain('portcullis_ext_authz_checks_total{mode="http",outcome="denied",status="401"} 1');
    expect(text).toContain('portcullis_ext_authz_check_failures_total{mode="http",reason="timeout"} 1');
  });
});
