// The CA's own metrics: certificates issued by key type, refusals by reason, signing latency, the trust bundle.
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, type ServiceMetrics } from '@portcullis/runtime';

export interface CaMetrics {
  issued: Counter<'key_type' | 'auth'>;
  refused: Counter<'reason'>;
  /** CSR validation and signing (and the wait for a signing thread): without the network or the database. */
  signing: Histogram<'key_type'>;
  /** The issuance record's commit, which every certificate waits for. */
  recordWrite: Histogram;
  bundleRoots: Gauge;
  bundleSequence: Gauge;
}

export function createCaMetrics(metrics: ServiceMetrics): CaMetrics {
  const registers = [metrics.registry];
  return {
    issued: new Counter({
      name: 'portcullis_ca_certificates_issued_total',
      help: 'Workload certificates issued, by the CSR key type and how the caller authenticated (token, mtls).',
      labelNames: ['key_type', 'auth'],
      registers,
    }),
    refused: new Counter({
      name: 'portcullis_ca_requests_refused_total',
      help: 'Certificate requests refused, by reason (a @portcullis/pki error code, or no_credentials).',
      labelNames: ['reason'],
      registers,
    }),
    signing: new Histogram({
      name: 'portcullis_ca_signing_duration_seconds',
      help: 'CSR validation and certificate signing time, by the CSR key type (with signing threads, the wait for a thread included).',
      labelNames: ['key_type'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    recordWrite: new Histogram({
      name: 'portcullis_ca_issuance_record_duration_seconds',
      help: 'Time from signing to the committed issuance record (group commit included).',
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    bundleRoots: new Gauge({
      name: 'portcullis_ca_trust_bundle_roots',
      help: 'Roots in the trust bundle (two during a rotation overlap).',
      registers,
    }),
    bundleSequence: new Gauge({
      name: 'portcullis_ca_trust_bundle_sequence',
      help: 'The SPIFFE bundle sequence number of the current trust bundle.',
      registers,
    }),
  };
}
