// Public API of @portcullis/identity: transport-free JWT authentication with Istio RequestAuthentication semantics.
export {
  AUTHENTICATION_ERROR_CODES,
  AuthenticationError,
  type AuthenticationErrorCode,
  InvalidResourceError,
  type ResourceProblem,
} from './errors.ts';
export {
  claimHeaderValue,
  formatClaimNumber,
  type HeaderMutations,
  removeQueryParams,
  upstreamHeaderMutations,
} from './header-outputs.ts';
export {
  JWKS_CACHE_DEFAULTS,
  JwksCache,
  type JwksCacheHooks,
  type JwksCacheOptions,
  type JwksEntryStatus,
  type JwksFetchEvent,
  type JwksFetchTrigger,
  type JwksSource,
  type KeyLookup,
  KeySet,
  maxAge,
} from './jwks-cache.ts';
export {
  DEFAULT_JWT_ALGORITHMS,
  isJwtAlgorithm,
  JWT_ALGORITHMS,
  type JwtAlgorithm,
} from './jwt-algorithms.ts';
export {
  type AnonymousOutcome,
  type AuthenticatedOutcome,
  type AuthenticationOutcome,
  DEFAULT_CLOCK_SKEW_SECONDS,
  DEFAULT_MAX_TOKEN_BYTES,
  JwtAuthenticator,
  type JwtAuthenticatorHooks,
  type JwtAuthenticatorOptions,
  type VerifiedJwt,
} from './jwt-authenticator.ts';
export {
  type AuthenticationRequest,
  DEFAULT_ROOT_NAMESPACE,
  PolicySet,
  type PolicySetOptions,
} from './policy-set.ts';
export {
  ALGORITHMS_FIELD,
  type ClaimToHeader,
  DEFAULT_JWKS_TIMEOUT_MS,
  DEFAULT_MAX_RESOURCE_BYTES,
  decodeResourceDocument,
  type JwtHeaderLocation,
  type JwtRule,
  type ParseRequestAuthenticationOptions,
  parseDurationMs,
  parseRequestAuthentication,
  REQUEST_AUTHENTICATION_API_VERSIONS,
  type RequestAuthentication,
  type RequestAuthenticationApiVersion,
} from './request-authentication.ts';
export {
  type FoundToken,
  type HeaderInput,
  headerToken,
  type QueryInput,
  RuleScope,
  type TokenLocation,
  type TokenRequest,
} from './token-extraction.ts';
