// The PIP's own Prometheus metrics: JWKS fetches and key age, verifications by outcome, attribute imports.
import type { JwksCache, JwksCacheHooks, JwtAuthenticatorHooks } from '@portcullis/identity';
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, type Registry } from '@portcullis/runtime';

export interface PipMetrics {
  jwksHooks: JwksCacheHooks;
  authenticatorHooks: JwtAuthenticatorHooks;
  /** Reads key ages from the cache at scrape time. */
  watchKeyAge(cache: JwksCache): void;
  importedLines: Counter<'outcome'>;
}

/** Several PIPs in one process (tests) share nothing: each gets its own registry from createMetrics. */
export function createPipMetrics(registry: Registry): PipMetrics {
  const registers = [registry];
  const fetches = new Counter({
    name: 'portcullis_pip_jwks_fetches_total',
    help: 'JWKS (and OpenID discovery) fetches by issuer, trigger (initial, expired, unknown_kid, retry) and outcome.',
    labelNames: ['issuer', 'trigger', 'outcome'],
    registers,
  });
  const fetchDuration = new Histogram({
    name: 'portcullis_pip_jwks_fetch_duration_seconds',
    help: 'Time to fetch and import one key set, by issuer and outcome.',
    labelNames: ['issuer', 'outcome'],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const verifications = new Counter({
    name: 'portcullis_pip_jwt_verifications_total',
    help: 'Presented tokens by outcome (verified or rejected) and reason code (empty when verified).',
    labelNames: ['outcome', 'code'],
    registers,
  });
  let cache: JwksCache | undefined;
  new Gauge({
    name: 'portcullis_pip_jwks_key_age_seconds',
    help: 'Age of the key set in use per issuer; grows past the refresh interval while its issuer is unreachable.',
    labelNames: ['issuer'],
    registers,
    collect() {
      this.reset();
      for (const entry of cache?.snapshot() ?? []) {
        if (entry.ageSeconds !== undefined) this.set({ issuer: entry.issuer }, entry.ageSeconds);
      }
    },
  });
  return {
    jwksHooks: {
      onFetch: (e) => {
        fetches.inc({ issuer: e.issuer, trigger: e.trigger, outcome: e.outcome });
        fetchDuration.observe({ issuer: e.issuer, outcome: e.outcome }, e.durationSeconds);
      },
    },
    authenticatorHooks: {
      // Issuers are not labels here: a rejected token's issuer may be anything the client wrote.
      onVerified: () => verifications.inc({ outcome: 'verified', code: '' }),
      onRejected: ({ code }) => verifications.inc({ outcome: 'rejected', code }),
    },
    watchKeyAge(c) {
      cache = c;
    },
    importedLines: new Counter({
      name: 'portcullis_pip_attribute_import_lines_total',
      help: 'Lines of attribute imports by outcome (imported or failed).',
      labelNames: ['outcome'],
      registers,
    }),
  };
}
