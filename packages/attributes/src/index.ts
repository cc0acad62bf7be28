// Public API of @portcullis/attributes: the client-side attribute cache, the PIP's gRPC clients and decision-input enrichment.
export {
  AttributeCache,
  type AttributeCacheOptions,
  type AttributeCacheStats,
  type AttributeKey,
  type AttributeSource,
  type AttributeValue,
} from './attribute-cache.ts';
export {
  ATTRIBUTE_EVENTS_TOPIC,
  type AttributeChange,
  type AttributeEvent,
  attributeEventKey,
  decodeAttributeEvent,
  encodeAttributeEvent,
} from './attribute-events.ts';
export {
  type AttributeLookup,
  type AttributesView,
  Enricher,
  type EnricherOptions,
  type EnrichmentConfig,
  type EnrichmentRequest,
  type IdentityOutcome,
  type IdentitySource,
  type IdentityView,
  type IdSelector,
} from './enrichment.ts';
export {
  attributeLookupSetting,
  type EnrichmentSettings,
  enrichmentConfig,
  parseAttributeLookup,
} from './enrichment-config.ts';
export { GrpcAttributeSource, GrpcIdentitySource, type PipClientOptions } from './pip-clients.ts';
