// The decide of an enforcement point: decision ids, decision log entries, and why no decision could be made.
import { AuthenticationError } from '@portcullis/identity';
import type { DecisionLogEntry } from '@portcullis/runtime';
import { describe, expect, it } from 'vitest';
import {
  type CheckFailure,
  createPolicyDecide,
  type DecisionEngine,
  DecisionResultError,
  type EnvoyAuthzInput,
  engineEvaluator,
  enricherHook,
  failureReason,
  NoDecisionError,
  type PolicyEvaluation,
} from '../src/index.ts';

const input: EnvoyAuthzInput = {
  attributes: { request: { http: { method: 'GET', path: '/x', headers: { authorization: 'Bearer t' } } } },
  parsed_path: ['x'],
  parsed_query: {},
  version: { ext_authz: 'v3', encoding: 'protojson' },
};
const evaluation: PolicyEvaluation = {
  result: { allowed: true },
  bundle: 'b',
  revision: 3,
  digest: 'abc',
  evalNs: 42,
};
const signal = new AbortController().signal;

class EngineErrorLike extends Error {
  constructor(readonly code: string) {
    super(`engine says ${code}`);
  }
}

describe('engineEvaluator', () => {
  it('returns the engine’s decision', async () => {
    const engine: DecisionEngine = {
      evaluate: (path, i) => ({ ...evaluation, result: { path, got: i === input } }),
    };
    expect(await engineEvaluator(engine).evaluate('p/q', input, { decisionId: 'd', signal })).toEqual({
      ...evaluation,
      result: { path: 'p/q', got: true },
    });
  });

  it.each<[string, unknown, NoDecisionError['reason']]>([
    ['nothing serves the path', new EngineErrorLike('entrypoint_not_found'), 'no_policy'],
    ['no bundle loaded', new EngineErrorLike('bundle_not_loaded'), 'no_policy'],
    ['the evaluation failed', new EngineErrorLike('eval_failed'), 'evaluation_error'],
    ['a builtin failed', new EngineErrorLike('builtin_error'), 'evaluation_error'],
    ['something else was thrown', 'a string', 'evaluation_error'],
  ])('%s → %s', async (_name, thrown, reason) => {
    const engine: DecisionEngine = {
      evaluate: () => {
        throw thrown;
      },
    };
    const error = (await engineEvaluator(engine)
      .evaluate('p', input, { decisionId: 'd', signal })
      .catch((e: unknown) => e)) as NoDecisionError;
    expect(error).toBeInstanceOf(NoDecisionError);
    expect(error.reason).toBe(reason);
    expect(error.cause).toBe(thrown);
  });
});

describe('createPolicyDecide', () => {
  it('a fresh decision id per check, logged with the input, result and revision', async () => {
    const logged: DecisionLogEntry[] = [];
    const ids: string[] = [];
    const decide = createPolicyDecide({
      path: 'envoy/authz/allow',
      evaluator: {
        evaluate: async (_path, _input, ctx) => {
          ids.push(ctx.decisionId);
          return evaluation;
        },
      },
      decisionLog: { log: (e) => logged.push(e) > 0 },
      labels: { service: 'test' },
    });
    const first = await decide(input, { signal });
    const second = await decide(input, { signal });
    expect(first.result).toEqual({ allowed: true });
    expect(first.decisionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(second.decisionId).not.toBe(first.decisionId);
    expect(ids).toEqual([first.decisionId, second.decisionId]);
    expect(logged[0]).toEqual({
      decision_id: first.decisionId,
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      path: 'envoy/authz/allow',
      input,
      result: { allowed: true },
      bundle: 'b',
      revision: 3,
      digest: 'abc',
      eval_ns: 42,
      labels: { service: 'test' },
    });
  });

  it('passes the caller’s deadline and signal on, and logs nothing when no decision was made', async () => {
    const deadline = new Date(Date.now() + 1000);
    const logged: DecisionLogEntry[] = [];
    let seen: unknown;
    const decide = createPolicyDecide({
      path: 'p',
      evaluator: {
        evaluate: async (_p, _i, ctx) => {
          seen = ctx;
          throw new NoDecisionError('timeout', 'too slow');
        },
      },
      decisionLog: { log: (e) => logged.push(e) > 0 },
    });
    await expect(decide(input, { signal, deadline })).rejects.toBeInstanceOf(NoDecisionError);
    expect(seen).toMatchObject({ deadline, signal });
    expect(logged).toEqual([]);
  });
});

describe('createPolicyDecide with an enrichment step', () => {
  const logged: DecisionLogEntry[] = [];
  const seen: unknown[] = [];
  const evaluator = {
    evaluate: async (_path: string, i: EnvoyAuthzInput) => {
      seen.push(i);
      return evaluation;
    },
  };
  const decideWith = (enrich: (i: EnvoyAuthzInput) => Promise<EnvoyAuthzInput>) =>
    createPolicyDecide({
      path: 'envoy/authz/allow',
      evaluator,
      decisionLog: { log: (e) => logged.push(e) > 0 },
      enrich: enricherHook({ enrich }),
    });

  it('evaluates and logs the enriched input', async () => {
    seen.length = 0;
    logged.length = 0;
    const enriched = { ...input, identity: { anonymous: true } };
    const decision = await decideWith(async () => enriched)(input, { signal });
    expect(decision.result).toEqual({ allowed: true });
    expect(seen).toEqual([enriched]);
    expect(logged[0]?.input).toBe(enriched);
  });

  it.each<[string, AuthenticationError, number, string]>([
    [
      'an invalid token',
      new AuthenticationError('bad_signature', 'signature mismatch'),
      401,
      'invalid_token',
    ],
    ['a wrong audience', new AuthenticationError('wrong_audience', 'aud'), 403, 'insufficient_scope'],
  ])('refuses %s without evaluating (%i)', async (_what, error, status, challenge) => {
    seen.length = 0;
    logged.length = 0;
    const decision = await decideWith(async () => {
      throw error;
    })(input, { signal });
    expect(decision.result).toMatchObject({
      allowed: false,
      http_status: status,
      headers: { 'www-authenticate': `Bearer error="${challenge}"` },
    });
    expect(decision.decisionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen).toEqual([]);
    expect(logged).toEqual([]);
  });

  it('fails the decision when enrichment fails otherwise (the fail-closed stance applies)', async () => {
    const failure = new Error('pip unavailable');
    await expect(
      decideWith(async () => {
        throw failure;
      })(input, { signal }),
    ).rejects.toBe(failure);
  });
});

describe('failureReason', () => {
  const failure = (kind: CheckFailure['kind'], error: unknown): CheckFailure => ({
    kind,
    error,
    decisionId: 'd',
    outcome: 'deny',
  });
  it.each<[CheckFailure, string]>([
    [failure('decide', new NoDecisionError('no_policy', 'x')), 'no_policy'],
    [failure('decide', new NoDecisionError('unavailable', 'x')), 'unavailable'],
    [failure('decide', new Error('a bug')), 'decide_error'],
    [failure('invalid_result', new DecisionResultError('bad')), 'invalid_result'],
    [failure('request_parse', new Error('x')), 'request_parse'],
    [failure('cancelled', new Error('x')), 'cancelled'],
  ])('%#: %s', (f, reason) => {
    expect(failureReason(f)).toBe(reason);
  });
});
