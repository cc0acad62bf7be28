// @portcullis/pip: the policy information point, as a library for tests, the stack and benchmarks.
export { type ApiCaller, ApiTokens, callerOf, ROLES, type Role, roleAllows } from './api-tokens.ts';
export { type ImportResult, importAttributes } from './attribute-import.ts';
export { AttributeSchemas } from './attribute-schemas.ts';
export { type AttributeRecord, AttributeStore, etagOf, keyProblem } from './attribute-store.ts';
export { loadPipConfig, PIP_CONFIG, type PipConfig } from './config.ts';
export {
  ATTRIBUTES_SERVICE,
  addPipServices,
  IDENTITY_SERVICE,
  MAX_BATCH_KEYS,
  PIP_PROTO,
} from './grpc-services.ts';
export {
  buildPip,
  createPipApp,
  MIGRATIONS_DIR,
  type Pip,
  type PipDeps,
  type PipServices,
} from './pip-app.ts';
export { IDENTITY_EVENTS_TOPIC, PIP_OUTBOX_CHANNEL, PIP_OUTBOX_TABLE } from './pip-outbox.ts';
export { RequestAuthenticationStore } from './request-authentication-store.ts';
export { RequestAuthenticationSync } from './request-authentication-sync.ts';
