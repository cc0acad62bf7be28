// @portcullis/envoy-authz: Envoy ext_authz (gRPC and HTTP service modes) with OPA-Envoy's input and decision semantics, without the transport.

export {
  type AuthorizationServiceOptions,
  type Authorizer,
  authorizationHandlers,
  type CheckFailure,
  type CheckFailureKind,
  type CheckHandler,
  createAuthorizationService,
  createAuthorizer,
  createCheckHandler,
  type DecideContext,
  type DecideFn,
  type Decision,
} from './authorization-service.ts';
export {
  type CheckMetrics,
  type CheckMode,
  type CheckObservers,
  checkMetrics,
  checkObservers,
} from './check-metrics.ts';
export {
  CHECK_OUTCOMES,
  type CheckOutcome,
  type CheckReport,
  type CheckReporter,
  responseHttpStatus,
} from './check-report.ts';
export {
  checkRequestToInput,
  DEFAULT_MAX_BODY_BYTES,
  type EnvoyAuthzInput,
  type InputOptions,
  type InputResult,
} from './check-request-input.ts';
export {
  decisionToCheckResponse,
  denyResponse,
  failOpenResponse,
  type HeaderPair,
  type InterpretedDecision,
  interpretDecision,
  isEnvoyHttpStatus,
  requestParseErrorResponse,
} from './check-response.ts';
export { CHECK_SPAN_NAME } from './check-span.ts';
export {
  AUTHORIZATION_SERVICE,
  AuthorizationClient,
  authorizationServiceDefinition,
  type CheckRequest,
  type CheckResponse,
  checkRequestType,
  type DeniedHttpResponse,
  ENVOY_HTTP_STATUS_CODES,
  ENVOY_PROTO_INCLUDE_DIRS,
  EXTERNAL_AUTH_PROTO,
  envoyAuthPackageDefinition,
  envoyProtoRoot,
  type HeaderValueOption,
  type HttpRequest,
  loadEnvoyProtos,
  type OkHttpResponse,
  type Struct,
} from './envoy-protos.ts';
export { DecisionResultError, RequestParseError } from './errors.ts';
export {
  createHttpAuthzHandler,
  type HttpAuthzHandler,
  type HttpAuthzHandlerOptions,
} from './http-authz-handler.ts';
export {
  type AuthzHttpReply,
  type AuthzHttpRequest,
  createHttpAuthorizer,
  decisionToHttpReply,
  type HttpAuthorizer,
  type HttpAuthorizerOptions,
  type HttpServiceOptions,
  httpDenyReply,
  httpRequestToInput,
  isHttpDenialStatus,
} from './http-service.ts';
export {
  type EnrichFn,
  enricherHook,
  type InputEnricher,
  InputRejectedError,
} from './input-enrichment.ts';
export type { JsonObject, JsonValue } from './json-value.ts';
export { parsePathAndQuery } from './path-and-query.ts';
export {
  DECISIONS_PROTO,
  DECISIONS_SERVICE,
  PdpEvaluator,
  type PdpEvaluatorOptions,
} from './pdp-evaluator.ts';
export {
  createPolicyDecide,
  type DecisionEngine,
  type DecisionLogSink,
  type EvaluationContext,
  engineEvaluator,
  failureReason,
  NoDecisionError,
  type NoDecisionReason,
  type PolicyDecideOptions,
  type PolicyEvaluation,
  type PolicyEvaluator,
} from './policy-decide.ts';
export { jsonToStruct, structToJson } from './proto-map.ts';
