// One OpenTelemetry span per check, continuing the trace the request (or Envoy's own ext_authz call) carries.
import { type Span, SpanStatusCode, type Tracer, withSpan } from '@portcullis/runtime';
import type { CheckReport } from './check-report.ts';
import { isJsonObject } from './json-value.ts';

export const CHECK_SPAN_NAME = 'ext_authz.check';

type Carrier = Record<string, string>;

/**
 * Where the parent comes from: Envoy's call metadata when Envoy traces (its ext_authz client span
 * is itself a child of the request's), else the `traceparent`/`tracestate` headers of the request
 * being authorized. Either way the check joins the request's trace.
 */
export function traceCarrier(callTraceparent: string | undefined, headers: unknown): Carrier {
  if (callTraceparent) return { traceparent: callTraceparent };
  const carrier: Carrier = {};
  if (!isJsonObject(headers)) return carrier;
  for (const name of ['traceparent', 'tracestate']) {
    const value = headers[name];
    if (typeof value === 'string' && value !== '') carrier[name] = value;
  }
  return carrier;
}

/** `request.attributes.request.http.headers` of a CheckRequest-shaped value, without trusting its shape. */
export function checkRequestHeaders(request: unknown): unknown {
  const attributes = isJsonObject(request) ? request.attributes : undefined;
  const req = isJsonObject(attributes) ? attributes.request : undefined;
  const http = isJsonObject(req) ? req.http : undefined;
  return isJsonObject(http) ? http.headers : undefined;
}

/** Runs one check in its span (or bare, without a tracer); `fn` returns the report to record on it. */
export async function inCheckSpan<T extends { report: CheckReport }>(
  tracer: Tracer | undefined,
  mode: 'grpc' | 'http',
  carrier: Carrier,
  fn: () => Promise<T>,
): Promise<T> {
  if (tracer === undefined) return fn();
  return withSpan(tracer, CHECK_SPAN_NAME, carrier, async (span: Span) => {
    const out = await fn();
    const { report } = out;
    span.setAttributes({
      'portcullis.ext_authz.mode': mode,
      'portcullis.ext_authz.outcome': report.outcome,
      'portcullis.decision_id': report.decisionId,
      'http.response.status_code': report.httpStatus,
    });
    if (report.outcome === 'failed_closed' || report.outcome === 'failed_open') {
      span.setStatus({ code: SpanStatusCode.ERROR, message: 'no decision could be made' });
    }
    return out;
  });
}
