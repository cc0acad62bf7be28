// The `envoy.service.auth.v3.Authorization/Check` implementation: input from the request, a decision from the caller's `decide`, the CheckResponse back; fail-closed on every error.
import { randomUUID } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { HandlerMap, Tracer } from '@portcullis/runtime';
import {
  type CheckOutcome,
  type CheckReport,
  type CheckReporter,
  responseHttpStatus,
  safeCheckReporter,
  secondsSince,
} from './check-report.ts';
import {
  assertInputOptions,
  checkRequestToInput,
  type EnvoyAuthzInput,
  type InputOptions,
} from './check-request-input.ts';
import {
  decisionToCheckResponse,
  denyResponse,
  failOpenResponse,
  isEnvoyHttpStatus,
  requestParseErrorResponse,
} from './check-response.ts';
import { checkRequestHeaders, inCheckSpan, traceCarrier } from './check-span.ts';
import { type CheckRequest, type CheckResponse, RPC_CODE_OK } from './envoy-protos.ts';
import { DecisionResultError } from './errors.ts';

export interface DecideContext {
  /** When the caller (Envoy's ext_authz `timeout`) stops waiting; absent if it set none. */
  deadline?: Date;
  /** The W3C trace context Envoy propagated, to continue the trace in the decision. */
  traceparent?: string;
  /** Aborted when the call is cancelled or its deadline passes: stop work nobody will read. */
  signal: AbortSignal;
}

export interface Decision {
  /** The policy's result: a boolean or an OPA-Envoy decision object (checked here). */
  result: unknown;
  /** The id the decision was logged under; sent to Envoy as dynamic metadata `decision_id`. */
  decisionId: string;
}

export type DecideFn = (input: EnvoyAuthzInput, ctx: DecideContext) => Promise<Decision>;

/**
 * Why a check was answered without a policy verdict:
 * - `request_parse`: the request could not be made into an input; answered 400 as OPA-Envoy does
 *   (the client's fault: never failed open);
 * - `decide`: `decide` threw or rejected;
 * - `invalid_result`: the result is not a decision (DecisionResultError);
 * - `cancelled`: the call was cancelled or its deadline passed before the decision; nothing was
 *   answered (grpc-js has already ended the call with CANCELLED or DEADLINE_EXCEEDED).
 */
export type CheckFailureKind = 'request_parse' | 'decide' | 'invalid_result' | 'cancelled';

export interface CheckFailure {
  kind: CheckFailureKind;
  error: unknown;
  /**
   * The decide's id when it returned one, else a fresh one that the response also carries
   * (dynamic metadata `decision_id`, or the HTTP mode's decision id header), so an access log
   * line joins the error log line; '' for a call that ended before anything was decided.
   */
  decisionId: string;
  /** What the client got: `deny`, `allow` (failOpen), or `none` (cancelled). */
  outcome: 'deny' | 'allow' | 'none';
}

export interface AuthorizationServiceOptions extends InputOptions {
  decide: DecideFn;
  /** Told of every check answered without a verdict. Must not throw (a throw is only a process warning). */
  onError: (failure: CheckFailure) => void;
  /** Told of every check once it is answered (for metrics). Must not throw. */
  onCheck?: CheckReporter;
  /** When given, each check runs in its own span (`ext_authz.check`), continuing the request's trace. */
  tracer?: Tracer;
  /** Allow when `decide` fails or its result is invalid. Default false: deny (fail closed). */
  failOpen?: boolean;
  /** HTTP status of a fail-closed denial. Default 403, as Envoy's own `status_on_error`. */
  denyStatus?: number;
}

/** A decision function over the transport: `(request, call context) → CheckResponse`, never rejecting. */
export type Authorizer = (request: CheckRequest | unknown, ctx: DecideContext) => Promise<CheckResponse>;

/**
 * Validates options once, at wiring time (a bad value stops the service at start, naming it),
 * and returns the Check logic without gRPC in it.
 */
export function createAuthorizer(options: AuthorizationServiceOptions): Authorizer {
  const check = createCheck(options);
  const reportCheck = safeCheckReporter(options.onCheck);
  return async (request, ctx) => {
    const started = performance.now();
    const carrier = traceCarrier(ctx.traceparent, checkRequestHeaders(request));
    const { response, report } = await inCheckSpan(options.tracer, 'grpc', carrier, async () => {
      const { response, outcome } = await check(request, ctx);
      return { response, report: reportOf(response, outcome, started) };
    });
    reportCheck(report);
    return response;
  };
}

function reportOf(response: CheckResponse, outcome: CheckOutcome, started: number): CheckReport {
  return {
    outcome,
    httpStatus: outcome === 'cancelled' ? 0 : responseHttpStatus(response),
    decisionId: decisionIdOf(response),
    durationSeconds: secondsSince(started),
  };
}

type Check = (
  request: CheckRequest | unknown,
  ctx: DecideContext,
) => Promise<{ response: CheckResponse; outcome: Exclude<CheckOutcome, 'cancelled'> }>;

function createCheck(options: AuthorizationServiceOptions): Check {
  const { decide, onError } = options;
  const failOpen = options.failOpen ?? false;
  const denyStatus = options.denyStatus ?? 403;
  validateOptions(options, denyStatus);
  const report = safeReporter(onError);

  return async (request, ctx) => {
    const built = checkRequestToInput(request, options);
    if (!built.ok) {
      const decisionId = randomUUID();
      report({ kind: 'request_parse', error: built.error, decisionId, outcome: 'deny' });
      return { response: requestParseErrorResponse(built.error, decisionId), outcome: 'bad_request' };
    }
    let decision: Decision;
    try {
      decision = await decide(built.input, ctx);
    } catch (error) {
      return failure('decide', error, randomUUID());
    }
    try {
      const response = decisionToCheckResponse(decision.result, decision.decisionId);
      return { response, outcome: response.status?.code === RPC_CODE_OK ? 'allowed' : 'denied' };
    } catch (error) {
      return failure('invalid_result', error, decision.decisionId);
    }
  };

  function failure(
    kind: 'decide' | 'invalid_result',
    error: unknown,
    decisionId: string,
  ): { response: CheckResponse; outcome: 'failed_open' | 'failed_closed' } {
    report({ kind, error, decisionId, outcome: failOpen ? 'allow' : 'deny' });
    if (failOpen) return { response: failOpenResponse(decisionId), outcome: 'failed_open' };
    // The status message reaches Envoy's logs, never the client; decide's own errors may hold
    // internals, so only the result's (a policy bug, worded by us) is passed on.
    const reason = error instanceof DecisionResultError ? error.describe() : 'decision unavailable';
    return { response: denyResponse(denyStatus, reason, { decisionId }), outcome: 'failed_closed' };
  }
}

export type CheckHandler = (
  request: CheckRequest,
  call: grpc.ServerUnaryCall<CheckRequest, CheckResponse>,
) => Promise<CheckResponse>;

/**
 * The Check handler as an async function of (request, call), for the runtime's GrpcServer.
 *
 * Deadlines: the call's deadline is handed to `decide`, and its signal is aborted when grpc-js
 * ends the call (the client cancelled, or the deadline passed: grpc-js then answers
 * DEADLINE_EXCEEDED by itself). We do not race a denial in just before the deadline: Envoy's own
 * timer (the ext_authz `timeout`, 200 ms by default) fires at that moment and applies the
 * listener's `failure_mode_allow` / `status_on_error`, which is where the per-listener fail-open
 * or fail-closed stance belongs; a denial sent at the last instant would mostly arrive after
 * Envoy stopped listening, and would override that stance when it did not. A call already
 * ended is not decided at all; one that ends during `decide` is reported as `cancelled`.
 */
export function createCheckHandler(options: AuthorizationServiceOptions): CheckHandler {
  const check = createCheck(options);
  const report = safeReporter(options.onError);
  const reportCheck = safeCheckReporter(options.onCheck);
  const unanswered = (): CheckResponse => denyResponse(options.denyStatus ?? 403, 'call ended');

  return async (request, call) => {
    const started = performance.now();
    if (call.cancelled) {
      report({
        kind: 'cancelled',
        error: new Error('call ended before the check began'),
        decisionId: '',
        outcome: 'none',
      });
      reportCheck({ outcome: 'cancelled', httpStatus: 0, decisionId: '', durationSeconds: 0 });
      return unanswered();
    }
    const controller = new AbortController();
    const onCancelled = (): void => controller.abort(new Error('call cancelled or deadline exceeded'));
    call.once('cancelled', onCancelled);
    try {
      const ctx: DecideContext = { ...deadlineOf(call), ...traceparentOf(call), signal: controller.signal };
      const carrier = traceCarrier(ctx.traceparent, checkRequestHeaders(request));
      const answered = await inCheckSpan(options.tracer, 'grpc', carrier, async () => {
        const { response, outcome } = await check(request, ctx);
        if (!call.cancelled) return { response, report: reportOf(response, outcome, started) };
        const decisionId = decisionIdOf(response);
        report({
          kind: 'cancelled',
          error: new Error('call ended before the decision'),
          decisionId,
          outcome: 'none',
        });
        return { response, report: reportOf(response, 'cancelled', started) };
      });
      reportCheck(answered.report);
      return answered.response;
    } finally {
      call.off('cancelled', onCancelled);
    }
  };
}

/**
 * `{ Check }` for the runtime's GrpcServer: `server.addService(authorizationServiceDefinition,
 * authorizationHandlers(options))`. (GrpcServer's handlers take any request; ours takes a CheckRequest,
 * which is what the service definition decodes.)
 */
export function authorizationHandlers(options: AuthorizationServiceOptions): HandlerMap {
  return { Check: createCheckHandler(options) } as unknown as HandlerMap;
}

/** `{ Check }` for grpc-js: register with `server.addService(authorizationServiceDefinition, …)`. */
export function createAuthorizationService(options: AuthorizationServiceOptions): {
  Check: grpc.handleUnaryCall<CheckRequest, CheckResponse>;
} {
  const handler = createCheckHandler(options);
  const report = safeReporter(options.onError);
  return {
    Check: (call, callback) => {
      // A response to an ended call is dropped: grpc-js has answered it already.
      handler(call.request, call).then(
        (response) => {
          if (!call.cancelled) callback(null, response);
        },
        // The handler catches everything it calls; this only keeps a future bug from escaping, closed.
        (error: unknown) => {
          report({ kind: 'decide', error, decisionId: '', outcome: call.cancelled ? 'none' : 'deny' });
          if (!call.cancelled)
            callback(null, denyResponse(options.denyStatus ?? 403, 'decision unavailable'));
        },
      );
    },
  };
}

function validateOptions(options: AuthorizationServiceOptions, denyStatus: number): void {
  if (typeof options.decide !== 'function') throw new TypeError('decide must be a function');
  if (typeof options.onError !== 'function') throw new TypeError('onError must be a function');
  if (!isEnvoyHttpStatus(denyStatus))
    throw new TypeError(`denyStatus ${denyStatus} is not an HTTP status Envoy can send`);
  assertInputOptions(options);
}

/** onError, made safe to call from a handler: its own failure becomes a process warning. */
export function safeReporter(onError: (failure: CheckFailure) => void): (failure: CheckFailure) => void {
  return (failure) => {
    try {
      onError(failure);
    } catch (err) {
      process.emitWarning(`envoy-authz onError threw: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
}

function deadlineOf(call: grpc.ServerUnaryCall<CheckRequest, CheckResponse>): { deadline?: Date } {
  const deadline = call.getDeadline();
  if (deadline instanceof Date) return { deadline };
  return Number.isFinite(deadline) ? { deadline: new Date(deadline) } : {};
}

function traceparentOf(call: grpc.ServerUnaryCall<CheckRequest, CheckResponse>): { traceparent?: string } {
  const value = call.metadata.get('traceparent')[0];
  return typeof value === 'string' && value !== '' ? { traceparent: value } : {};
}

function decisionIdOf(response: CheckResponse): string {
  const value = response.dynamic_metadata?.fields['decision_id'];
  return value?.stringValue ?? '';
}
