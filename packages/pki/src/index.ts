// @portcullis/pki: transport-free SPIFFE certificate authority logic and the workload certificate client.
export {
  AUTHORITY_STATE_FORMAT,
  type AuthorityState,
  activatePreparedRoot,
  type CacertsFiles,
  type CreateAuthorityOptions,
  createAuthority,
  DEFAULT_INTERMEDIATE_TTL_SECONDS,
  DEFAULT_OVERLAP_SECONDS,
  DEFAULT_ROOT_TTL_SECONDS,
  type GeneratedCaOptions,
  importPluggedAuthority,
  issueServingCertificate,
  type OpenAuthorityOptions,
  type OpenedAuthority,
  openAuthority,
  parseAuthorityState,
  prepareRootRotation,
  pruneRetiredRoots,
  readCacertsDirectory,
  reencryptAuthorityState,
  renewIntermediate,
  rotateRoot,
  rotateToPluggedAuthority,
  type ServingCertificate,
  type ServingCertificateOptions,
  type SigningAuthority,
  type TrustedRoot,
  trustBundleOf,
} from './authority.ts';
export {
  type CallerIdentity,
  callerFromClaims,
  createDevelopmentTokenIssuer,
  createTokenVerifier,
  DEFAULT_CLOCK_TOLERANCE_SECONDS,
  DEFAULT_DEVELOPMENT_ISSUER,
  DEFAULT_MAX_TOKEN_BYTES,
  type DevelopmentTokenIssuer,
  type MintTokenOptions,
  mintBootstrapToken,
  type TokenVerifierOptions,
  verifyBootstrapToken,
} from './bootstrap-token.ts';
export { type CertificateInfo, type KeyUsage, readCertificate } from './certificate-info.ts';
export {
  type CsrValidationOptions,
  createCsr,
  DEFAULT_MAX_CSR_BYTES,
  type ValidatedCsr,
  validateCsr,
} from './csr.ts';
export {
  BACKDATE_SECONDS,
  DEFAULT_MAX_TTL_SECONDS,
  DEFAULT_TTL_SECONDS,
  type IssuedCertificate,
  type IssueRequest,
  Issuer,
  type IssuerOptions,
} from './issuer.ts';
export { generateKeyPair, KEY_TYPES, type KeyPair, type KeyType } from './key-algorithms.ts';
export {
  decryptPrivateKey,
  type EncryptedKey,
  encryptPrivateKey,
  type KeyEncryptionSecret,
  parseKeyEncryptionSecret,
} from './key-encryption.ts';
export {
  identityFromPeerCertificate,
  type PeerIdentityOptions,
  type SpiffeIdAllowList,
  spiffeServerIdentityCheck,
  verifyPeerSpiffeId,
} from './peer-identity.ts';
export { decodePemCertificates, encodePem } from './pem.ts';
export { isPkiError, PKI_ERROR_CODES, PkiError, type PkiErrorCode, type PkiErrorKind } from './pki-error.ts';
export {
  formatWorkloadSpiffeId,
  parseSpiffeId,
  parseWorkloadSpiffeId,
  type SpiffeId,
  type WorkloadIdentityName,
  type WorkloadSpiffeId,
} from './spiffe-id.ts';
export {
  type ParsedSpiffeBundle,
  parseSpiffeBundleDocument,
  parseTrustBundlePem,
  type SpiffeBundleDocument,
  type SpiffeBundleKey,
  spiffeBundleDocument,
  trustBundlePem,
} from './trust-bundle.ts';
export {
  type Clock,
  type RotatedEvent,
  systemClock,
  WorkloadIdentity,
  type WorkloadIdentityOptions,
  type WorkloadIdentityStatus,
  type WorkloadKeyType,
  type WorkloadState,
  type WorkloadTlsOptions,
} from './workload-identity.ts';
