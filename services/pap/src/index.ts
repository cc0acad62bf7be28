// @portcullis/pap: the policy administration point, as a library for tests, the stack and benchmarks.
export { activateRevision, OUTBOX_CHANNEL, parseIfMatch } from './activation.ts';
export { type AuditFilter, type AuditRecord, appendAudit, listAudit } from './audit-store.ts';
export { principalOf, requireRole, roleAllows } from './auth.ts';
export { activationEtag, BundleStore } from './bundle-store.ts';
export { loadPapConfig, PAP_CONFIG, type PapConfig } from './config.ts';
export { canonicalJson, contentHash } from './content-hash.ts';
export {
  addDistributionService,
  CHUNK_BYTES,
  DISTRIBUTION_PROTO,
  DISTRIBUTION_SERVICE,
} from './distribution-service.ts';
export { RevisionEvaluator } from './evaluation.ts';
export {
  buildPap,
  createPapApp,
  MIGRATIONS_DIR,
  type Pap,
  type PapDeps,
  type PapServices,
} from './pap-app.ts';
export { checkModulePaths, createRevision, type RevisionSource } from './revision-creation.ts';
export { BUNDLE_NAME_PATTERN, ROLES, type Role } from './schemas.ts';
export { generateToken, hashToken, type Principal, TokenStore } from './token-store.ts';
