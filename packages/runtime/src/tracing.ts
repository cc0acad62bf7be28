// OpenTelemetry tracing: an OTLP exporter when OTEL_EXPORTER_OTLP_ENDPOINT is set, otherwise off.
import { context, propagation, type Span, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api';

export type { Span, Tracer };
export { context, propagation, SpanStatusCode, trace };

export interface Tracing {
  enabled: boolean;
  shutdown(): Promise<void>;
}

/**
 * Starts the SDK before the service builds its servers, so the http and grpc instrumentations
 * can patch them. With no endpoint configured nothing is loaded: the API's no-op tracer is used
 * and trace context still passes through (W3C propagator is registered by the SDK only, so the
 * no-endpoint case propagates nothing — acceptable: there is nowhere to send spans).
 */
export async function startTracing(service: string, env: NodeJS.ProcessEnv = process.env): Promise<Tracing> {
  if (!env.OTEL_EXPORTER_OTLP_ENDPOINT) return { enabled: false, shutdown: async () => {} };
  const [{ NodeSDK }, { OTLPTraceExporter }, { HttpInstrumentation }, { GrpcInstrumentation }] =
    await Promise.all([
      import('@opentelemetry/sdk-node'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/instrumentation-http'),
      import('@opentelemetry/instrumentation-grpc'),
    ]);
  const sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME ?? `portcullis-${service}`,
    traceExporter: new OTLPTraceExporter(),
    instrumentations: [new HttpInstrumentation(), new GrpcInstrumentation()],
  });
  sdk.start();
  return { enabled: true, shutdown: () => sdk.shutdown() };
}

export function tracer(name: string): Tracer {
  return trace.getTracer(`portcullis.${name}`);
}

/** Runs `fn` in a span continuing the trace in `carrier` (e.g. a request's `traceparent` header). */
export async function withSpan<T>(
  t: Tracer,
  name: string,
  carrier: Record<string, string | string[] | undefined>,
  fn: (span: Span) => Promise<T> | T,
): Promise<T> {
  const parent = propagation.extract(context.active(), carrier);
  return t.startActiveSpan(name, {}, parent, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw err;
    } finally {
      span.end();
    }
  });
}
