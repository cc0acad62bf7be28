// @portcullis/policy-sync: keeps a decision engine on the PAP's active revisions (bus events, reconcile, disk cache).
export { type Activation, parseActivation, parseActivationEvent } from './activation.ts';
export { BundleCache, type CachedBundle } from './bundle-cache.ts';
export {
  DISTRIBUTION_PROTO,
  DISTRIBUTION_SERVICE,
  DistributionClient,
  type DistributionClientOptions,
  type FetchOptions,
  type PolicySource,
} from './distribution-client.ts';
export {
  PolicySync,
  type PolicySyncOptions,
  type RevisionTarget,
  type SyncedBundle,
  type SyncSource,
} from './policy-sync.ts';
export { type StaticActivation, StaticPolicyDistribution } from './static-distribution.ts';
export { type LoadFailureReason, type SyncMetrics, syncMetrics } from './sync-metrics.ts';
