// The `decide` of an enforcement point: a policy evaluator (the in-process engine or remote PDPs), decision ids, decision log entries, and why no decision could be made.
import { randomUUID } from 'node:crypto';
import { type DecisionLogEntry, type ErrorCode, PortcullisError, trace } from '@portcullis/runtime';
import type { CheckFailure, DecideFn } from './authorization-service.ts';
import type { EnvoyAuthzInput } from './check-request-input.ts';
import { type EnrichFn, InputRejectedError } from './input-enrichment.ts';

/**
 * Why an evaluator could not decide: nothing serves the decision path (no policy loaded, or the
 * PDP has none), the policy failed while evaluating, the remote PDP did not answer in time, or
 * no PDP could be reached. Every one of them is answered by the fail-closed (or fail-open) stance.
 */
export type NoDecisionReason = 'no_policy' | 'evaluation_error' | 'timeout' | 'unavailable';

const CODE_OF: Record<NoDecisionReason, ErrorCode> = {
  no_policy: 'unavailable',
  evaluation_error: 'evaluation_error',
  timeout: 'timeout',
  unavailable: 'unavailable',
};

export class NoDecisionError extends PortcullisError {
  readonly reason: NoDecisionReason;

  constructor(reason: NoDecisionReason, message: string, options: { cause?: unknown } = {}) {
    super(CODE_OF[reason], message, options);
    this.name = 'NoDecisionError';
    this.reason = reason;
  }
}

/** A decision as an evaluator returns it: the result (undefined when the policy left it undefined) and its revision. */
export interface PolicyEvaluation {
  result: unknown;
  bundle: string;
  revision: number;
  digest: string;
  evalNs: number;
}

export interface EvaluationContext {
  /** The id the decision is logged under (a remote PDP logs it under this id too). */
  decisionId: string;
  /** The caller's deadline, when it has one. */
  deadline?: Date;
  /** Aborted when nobody waits for the answer any more. */
  signal: AbortSignal;
}

/**
 * Where decisions come from. `evaluate` rejects with NoDecisionError when no decision can be
 * made (never with anything else); it does not mutate `input`.
 */
export interface PolicyEvaluator {
  evaluate(path: string, input: EnvoyAuthzInput, ctx: EvaluationContext): Promise<PolicyEvaluation>;
}

/** The engine as seen from here (`@portcullis/engine`'s PolicyEngine fits): synchronous, throwing its own errors. */
export interface DecisionEngine {
  evaluate(path: string, input?: unknown): PolicyEvaluation;
}

/** Engine error codes meaning "nothing serves this path" rather than "the policy failed". */
const NO_POLICY_CODES = new Set(['entrypoint_not_found', 'bundle_not_loaded']);

/** An evaluator over an in-process engine (the engine's evaluation is synchronous; it runs on this thread). */
export function engineEvaluator(engine: DecisionEngine): PolicyEvaluator {
  return {
    async evaluate(path, input) {
      try {
        return engine.evaluate(path, input);
      } catch (err) {
        const code = (err as { code?: unknown } | null)?.code;
        const message = err instanceof Error ? err.message : String(err);
        if (typeof code === 'string' && NO_POLICY_CODES.has(code)) {
          throw new NoDecisionError('no_policy', `no policy serves ${path}: ${message}`, { cause: err });
        }
        throw new NoDecisionError('evaluation_error', `evaluating ${path} failed: ${message}`, {
          cause: err,
        });
      }
    },
  };
}

/** Where decision log entries go (`@portcullis/runtime`'s DecisionLogger fits): `log` must not block nor throw. */
export interface DecisionLogSink {
  log(entry: DecisionLogEntry): boolean;
}

export interface PolicyDecideOptions {
  /** The decision path, e.g. `envoy/authz/allow`. */
  path: string;
  evaluator: PolicyEvaluator;
  /** Where to log decisions; leave out when the evaluator logs them itself (a remote PDP does). */
  decisionLog?: DecisionLogSink;
  /** Added to every decision log entry (e.g. `{service: 'ext-authz'}`). */
  labels?: Record<string, string>;
  /**
   * Runs before evaluation and returns the input to evaluate (e.g. `enricherHook`: identity and
   * stored attributes). An `InputRejectedError` is answered as a denial with its status, without
   * evaluating; any other error fails the decision.
   */
  enrich?: EnrichFn;
}

/**
 * A DecideFn: a fresh decision id per check, the enrichment step when configured, the evaluation,
 * one decision log entry (the input, enriched, is handed over as is: the logger redacts a copy
 * and the caller never mutates it), and the revision recorded on the active span. A request the
 * enrichment rejects gets no evaluation and no decision log entry (no policy decided it).
 */
export function createPolicyDecide(options: PolicyDecideOptions): DecideFn {
  const { path, evaluator, decisionLog, labels, enrich } = options;
  return async (checkInput, ctx) => {
    const decisionId = randomUUID();
    let input = checkInput;
    if (enrich !== undefined) {
      try {
        input = await enrich(checkInput, ctx);
      } catch (error) {
        if (!(error instanceof InputRejectedError)) throw error;
        // An OPA-Envoy decision object: both transports (gRPC and HTTP mode) answer it alike.
        const result = {
          allowed: false,
          http_status: error.httpStatus,
          headers: error.headers,
          body: error.body,
        };
        trace.getActiveSpan()?.setAttributes({ 'portcullis.rejected': error.code });
        return { result, decisionId };
      }
    }
    const evaluation = await evaluator.evaluate(path, input, {
      decisionId,
      signal: ctx.signal,
      ...(ctx.deadline === undefined ? {} : { deadline: ctx.deadline }),
    });
    decisionLog?.log({
      decision_id: decisionId,
      timestamp: new Date().toISOString(),
      path,
      input,
      result: evaluation.result,
      bundle: evaluation.bundle,
      revision: evaluation.revision,
      digest: evaluation.digest,
      eval_ns: evaluation.evalNs,
      ...(labels === undefined ? {} : { labels }),
    });
    trace.getActiveSpan()?.setAttributes({
      'portcullis.decision.path': path,
      'portcullis.bundle': evaluation.bundle,
      'portcullis.revision': evaluation.revision,
    });
    return { result: evaluation.result, decisionId };
  };
}

/** The metric label of a failed check: the evaluator's reason, or the failure's kind. */
export function failureReason(failure: CheckFailure): string {
  if (failure.kind !== 'decide') return failure.kind;
  return failure.error instanceof NoDecisionError ? failure.error.reason : 'decide_error';
}
