// Prometheus metrics of an enforcement point: checks by outcome and HTTP status, their latency, and why checks got no verdict.
import { Counter, Histogram, LATENCY_BUCKETS, type Logger, type Registry } from '@portcullis/runtime';
import type { CheckFailure } from './authorization-service.ts';
import type { CheckReport } from './check-report.ts';
import { failureReason } from './policy-decide.ts';

export type CheckMode = 'grpc' | 'http';

export interface CheckMetrics {
  /** Records one answered (or cancelled) check. */
  check(mode: CheckMode, report: CheckReport): void;
  /** Records why a check got no verdict (`reason`: no_policy, evaluation_error, timeout, unavailable, …). */
  failure(mode: CheckMode, failure: CheckFailure): void;
}

/** Several enforcement points in one process (tests) share a registry: reuse what is registered. */
function metric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export function checkMetrics(registry: Registry): CheckMetrics {
  const registers = [registry];
  const checks = metric(
    registry,
    'portcullis_ext_authz_checks_total',
    () =>
      new Counter({
        name: 'portcullis_ext_authz_checks_total',
        help: 'ext_authz checks by mode (grpc, http), outcome (allowed, denied, failed_closed, failed_open, bad_request, cancelled) and the HTTP status the client got.',
        labelNames: ['mode', 'outcome', 'status'],
        registers,
      }),
  );
  const duration = metric(
    registry,
    'portcullis_ext_authz_check_duration_seconds',
    () =>
      new Histogram({
        name: 'portcullis_ext_authz_check_duration_seconds',
        help: 'ext_authz check latency inside the adapter (input, decision, response), by mode and outcome.',
        labelNames: ['mode', 'outcome'],
        buckets: LATENCY_BUCKETS,
        registers,
      }),
  );
  const failures = metric(
    registry,
    'portcullis_ext_authz_check_failures_total',
    () =>
      new Counter({
        name: 'portcullis_ext_authz_check_failures_total',
        help: 'ext_authz checks answered without a policy verdict, by mode and reason (no_policy, evaluation_error, timeout, unavailable, invalid_result, request_parse, cancelled).',
        labelNames: ['mode', 'reason'],
        registers,
      }),
  );
  return {
    check(mode, report) {
      checks.inc({ mode, outcome: report.outcome, status: String(report.httpStatus) });
      duration.observe({ mode, outcome: report.outcome }, report.durationSeconds);
    },
    failure(mode, failure) {
      failures.inc({ mode, reason: failureReason(failure) });
    },
  };
}

export interface CheckObservers {
  onError: (failure: CheckFailure) => void;
  onCheck: (report: CheckReport) => void;
}

/**
 * The `onError` and `onCheck` of one mode's authorizer: every check counted, every check without a
 * verdict counted by reason and logged (debug when the caller went away, info for a request that
 * could not be parsed — the client's doing —, warn when no decision could be made).
 */
export function checkObservers(metrics: CheckMetrics, logger: Logger, mode: CheckMode): CheckObservers {
  return {
    onCheck: (report) => metrics.check(mode, report),
    onError: (failure) => {
      metrics.failure(mode, failure);
      const entry = {
        mode,
        reason: failureReason(failure),
        decisionId: failure.decisionId,
        outcome: failure.outcome,
        err: failure.error,
      };
      if (failure.kind === 'cancelled') logger.debug(entry, 'check ended before its answer');
      else if (failure.kind === 'request_parse') logger.info(entry, 'check request could not be parsed');
      else logger.warn(entry, `check answered without a decision (${failure.outcome})`);
    },
  };
}
