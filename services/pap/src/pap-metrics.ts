// The PAP's own Prometheus metrics, beside the shared HTTP and gRPC ones.
import { Counter, Histogram, LATENCY_BUCKETS, type Registry } from '@portcullis/runtime';

export interface PapMetrics {
  /** Posted revisions by outcome: `created`, `existing` (same content), or the error code. */
  revisions: Counter<'outcome'>;
  /** opa check + test + build of one revision, by outcome (`ok` or the error code). */
  compileDuration: Histogram<'outcome'>;
  /** Activation attempts by outcome: `activated` or the error code (`precondition_failed`, …). */
  activations: Counter<'outcome'>;
}

export function createPapMetrics(registry: Registry): PapMetrics {
  return {
    revisions: new Counter({
      name: 'portcullis_pap_revisions_total',
      help: 'Posted revisions by outcome: created, existing (same content) or the error code.',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    compileDuration: new Histogram({
      name: 'portcullis_pap_compile_duration_seconds',
      help: 'Time to check, test and compile one revision with opa, by outcome.',
      labelNames: ['outcome'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    activations: new Counter({
      name: 'portcullis_pap_activations_total',
      help: 'Activation attempts by outcome: activated or the error code.',
      labelNames: ['outcome'],
      registers: [registry],
    }),
  };
}
