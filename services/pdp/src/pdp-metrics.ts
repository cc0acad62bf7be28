// Prometheus metrics of the PDP's decisions (policy sync and the decision log register their own).
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, type Registry } from '@portcullis/runtime';

/** How a decision ended: the result when it is a boolean, else whether it was defined, or an error. */
export type DecisionOutcome = 'true' | 'false' | 'defined' | 'undefined' | 'error';

export interface PdpMetrics {
  decisions: Counter<'path' | 'outcome'>;
  decisionDuration: Histogram<'path'>;
  rejected: Counter<'reason'>;
}

function metric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/**
 * `path` is the entrypoint that answered, or `data`, `tree` or `none`: never the raw request path,
 * which a client controls and which would make the label set unbounded.
 */
export function pdpMetrics(registry: Registry, inFlight: () => number): PdpMetrics {
  const registers = [registry];
  if (!registry.getSingleMetric('portcullis_decisions_in_flight')) {
    const gauge: Gauge = new Gauge({
      name: 'portcullis_decisions_in_flight',
      help: 'Decisions in progress (HTTP and gRPC), the quantity PDP_MAX_CONCURRENCY bounds.',
      registers,
      collect: () => gauge.set(inFlight()),
    });
  }
  return {
    decisions: metric(
      registry,
      'portcullis_decisions_total',
      () =>
        new Counter({
          name: 'portcullis_decisions_total',
          help: 'Decisions made, by path (the entrypoint, or data, tree, none) and outcome (true, false, defined, undefined, error).',
          labelNames: ['path', 'outcome'],
          registers,
        }),
    ),
    decisionDuration: metric(
      registry,
      'portcullis_decision_duration_seconds',
      () =>
        new Histogram({
          name: 'portcullis_decision_duration_seconds',
          help: 'Time to make a decision (routing, evaluation, result), without transport.',
          labelNames: ['path'],
          buckets: LATENCY_BUCKETS,
          registers,
        }),
    ),
    rejected: metric(
      registry,
      'portcullis_decisions_rejected_total',
      () =>
        new Counter({
          name: 'portcullis_decisions_rejected_total',
          help: 'Decision requests refused before evaluation, by reason (too_many_requests, input_too_large, bad_input).',
          labelNames: ['reason'],
          registers,
        }),
    ),
  };
}
