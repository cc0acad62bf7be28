// @portcullis/ca: the SPIFFE workload certificate authority, as a library for tests, the stack and benchmarks.
export { type AuditEntry, AuthorityStore, type StoredAuthority } from './authority-store.ts';
export { buildCa, type Ca, type CaDeps, MIGRATIONS_DIR } from './ca-app.ts';
export { type ActiveAuthority, CaAuthority, type RotationMode } from './ca-authority.ts';
export { type CaMetrics, createCaMetrics } from './ca-metrics.ts';
export {
  type AuthenticatedCaller,
  bootstrapTokenVerifier,
  CallerAuthenticator,
  Refusal,
  refusalOf,
} from './caller-auth.ts';
export { addCaServices, type CertificateServiceDeps, createCertificate } from './certificate-service.ts';
export { CA_CONFIG, type CaConfig, loadCaConfig } from './config.ts';
export { IssuanceLog, type IssuanceRecord } from './issuance-log.ts';
export { caSpiffeId, ServingIdentity } from './serving-identity.ts';
