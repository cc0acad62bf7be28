// @portcullis/cli: the `portcullis` command over the PAP REST API, and the calls it is made of.
export {
  ApiClient,
  ApiError,
  CLI_SETTINGS,
  DEFAULT_PAP_URL,
  formatApiError,
  resolveConnection,
} from './api-client.ts';
export type {
  ActivationView,
  ActiveRef,
  AuditEntry,
  AuditPage,
  BundleView,
  EvaluateResult,
  RevisionCreated,
  RevisionSummary,
} from './api-types.ts';
export { type BundleContent, readBundleDir } from './bundle-dir.ts';
export { activateBundleRevision, findBundle, type PushResult, pushBundle } from './bundle-publishing.ts';
export { CA_CLI_SETTINGS } from './ca-commands.ts';
export { type CliIO, main } from './main.ts';
