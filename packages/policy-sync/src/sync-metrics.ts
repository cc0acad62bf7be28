// Prometheus metrics of policy sync: what each bundle serves, how late it arrived, and what failed.
import { Counter, Gauge, Histogram, type Registry } from '@portcullis/runtime';

/** Why a revision was not loaded (the `reason` label of load failures). */
export type LoadFailureReason =
  | 'digest_mismatch'
  | 'fetch_failed'
  | 'too_large'
  | 'invalid_bundle'
  | 'load_failed'
  | 'cache_damaged'
  | 'invalid_event';

export interface SyncMetrics {
  loadedInfo: Gauge<'bundle' | 'revision' | 'digest'>;
  propagationLag: Histogram<'bundle'>;
  loadFailures: Counter<'bundle' | 'reason'>;
  loads: Counter<'bundle' | 'source'>;
  reconciles: Counter<'outcome'>;
}

const LAG_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** Several syncs in one process (tests, a PDP with a worker pool) share a registry: reuse what is registered. */
function metric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export function syncMetrics(registry: Registry): SyncMetrics {
  const registers = [registry];
  return {
    loadedInfo: metric(
      registry,
      'portcullis_bundle_loaded_info',
      () =>
        new Gauge({
          name: 'portcullis_bundle_loaded_info',
          help: 'The revision each bundle serves now (always 1; the labels carry the information).',
          labelNames: ['bundle', 'revision', 'digest'],
          registers,
        }),
    ),
    propagationLag: metric(
      registry,
      'portcullis_bundle_propagation_lag_seconds',
      () =>
        new Histogram({
          name: 'portcullis_bundle_propagation_lag_seconds',
          help: 'Time from an activation at the PAP to this process serving it.',
          labelNames: ['bundle'],
          buckets: LAG_BUCKETS,
          registers,
        }),
    ),
    loadFailures: metric(
      registry,
      'portcullis_bundle_load_failures_total',
      () =>
        new Counter({
          name: 'portcullis_bundle_load_failures_total',
          help: 'Revisions (or events, or cache entries) refused or not loadable, by reason; the previous revision keeps serving.',
          labelNames: ['bundle', 'reason'],
          registers,
        }),
    ),
    loads: metric(
      registry,
      'portcullis_bundle_loads_total',
      () =>
        new Counter({
          name: 'portcullis_bundle_loads_total',
          help: 'Revisions loaded and swapped in, by what triggered the load (event, reconcile, cache).',
          labelNames: ['bundle', 'source'],
          registers,
        }),
    ),
    reconciles: metric(
      registry,
      'portcullis_policy_reconciles_total',
      () =>
        new Counter({
          name: 'portcullis_policy_reconciles_total',
          help: 'Reconciliations with the PAP (GetActive), by outcome (ok, failed).',
          labelNames: ['outcome'],
          registers,
        }),
    ),
  };
}
