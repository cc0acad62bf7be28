// gRPC: Istio's CreateCertificate (authenticate, validate, sign, record) and the trust bundle.

import { validateCsr } from '@portcullis/pki';
import { CERTIFICATE_SERVICE, TRUST_BUNDLE_SERVICE } from '@portcullis/pki/ca-client';
import { type GrpcServer, type grpc, type Logger, PortcullisError, serviceClient } from '@portcullis/runtime';
import type { CaAuthority } from './ca-authority.ts';
import type { CaMetrics } from './ca-metrics.ts';
import { type AuthenticatedCaller, type CallerAuthenticator, refusalOf } from './caller-auth.ts';
import type { IssuanceLog } from './issuance-log.ts';
import type { CertificateSigner } from './signing.ts';

export interface CreateCertificateRequest {
  csr: string;
  /** int64 arrives as a decimal string (proto-loader `longs: String`). */
  validity_duration: string;
  metadata?: unknown;
}

export interface CertificateServiceDeps {
  readonly authority: CaAuthority;
  readonly signer: CertificateSigner;
  readonly authenticator: CallerAuthenticator;
  readonly log: IssuanceLog;
  readonly metrics: CaMetrics;
  readonly logger: Logger;
  readonly refreshHintSeconds: number;
}

function requestedTtl(raw: string | number | undefined): number | undefined {
  const ttl = Number(raw ?? 0);
  // 0 (the proto default) asks for the CA's default; anything else the Issuer checks.
  return ttl === 0 ? undefined : ttl;
}

function fieldOf(reason: string): string | undefined {
  if (reason.startsWith('csr_') || reason === 'identity_mismatch') return 'csr';
  if (reason.startsWith('ttl_')) return 'validity_duration';
  return undefined;
}

/** The SPIFFE ID a refused CSR asked for, for the audit trail; undefined when the CSR did not parse. */
function requestedSpiffeId(csr: string, maxBytes: number): string | undefined {
  try {
    return validateCsr(csr, { maxBytes }).identity.spiffeId;
  } catch {
    return undefined;
  }
}

/** Handles one CreateCertificate call; exported for tests that drive it without a network. */
export async function createCertificate(
  deps: CertificateServiceDeps,
  request: CreateCertificateRequest,
  credentials: {
    authorization?: string | undefined;
    peerCertificate?: import('node:tls').PeerCertificate | undefined;
  },
): Promise<{ cert_chain: string[] }> {
  let caller: AuthenticatedCaller | undefined;
  try {
    caller = await deps.authenticator.authenticate(credentials);
    const started = process.hrtime.bigint();
    const ttlSeconds = requestedTtl(request.validity_duration);
    const issued = await deps.signer.issue({
      csr: request.csr ?? '',
      caller,
      ...(ttlSeconds === undefined ? {} : { ttlSeconds }),
    });
    deps.metrics.signing.observe(
      { key_type: issued.keyType },
      Number(process.hrtime.bigint() - started) / 1e9,
    );
    const endRecord = deps.metrics.recordWrite.startTimer();
    try {
      await deps.log.record({
        serial: issued.serial,
        spiffeId: issued.spiffeId,
        notBefore: issued.notBefore,
        notAfter: issued.notAfter,
        caller: caller.label,
        authMethod: caller.method,
        keyType: issued.keyType,
      });
    } catch (error) {
      // No record, no certificate: the audit trail must hold every certificate in circulation.
      throw new PortcullisError('unavailable', 'the CA could not record the issuance; retry', {
        cause: error,
      });
    } finally {
      endRecord();
    }
    deps.metrics.issued.inc({ key_type: issued.keyType, auth: caller.method });
    return { cert_chain: issued.chainPem };
  } catch (error) {
    const refusal = refusalOf(error, undefined);
    if (refusal === undefined) throw error;
    deps.metrics.refused.inc({ reason: refusal.reason });
    const field = fieldOf(refusal.reason);
    const refused =
      field === undefined
        ? refusal.error
        : new PortcullisError(refusal.error.code, refusal.error.message, {
            details: [{ field, reason: refusal.reason }],
            cause: refusal.error.cause,
          });
    await deps.log
      .refuse({
        actor: caller?.label,
        spiffeId: caller
          ? requestedSpiffeId(request.csr ?? '', deps.authority.current().issuer.maxCsrBytes)
          : undefined,
        reason: refusal.reason,
        message: refusal.error.message,
      })
      .catch((auditError: unknown) =>
        deps.logger.error(
          { err: auditError, reason: refusal.reason },
          'could not audit a refused certificate request',
        ),
      );
    throw refused;
  }
}

/** Registers both services on `server`; `pkg` holds the loaded CA protos. */
export function addCaServices(server: GrpcServer, pkg: grpc.GrpcObject, deps: CertificateServiceDeps): void {
  server.addService(serviceClient(pkg, CERTIFICATE_SERVICE).service, {
    CreateCertificate: (request: CreateCertificateRequest, call: grpc.ServerUnaryCall<unknown, unknown>) => {
      const authorization = call.metadata.get('authorization')[0];
      return createCertificate(deps, request, {
        authorization: typeof authorization === 'string' ? authorization : undefined,
        peerCertificate: call.getAuthContext().sslPeerCertificate,
      });
    },
  });
  server.addService(serviceClient(pkg, TRUST_BUNDLE_SERVICE).service, {
    GetTrustBundle: async () => {
      const { state, bundlePem } = deps.authority.current();
      return {
        trust_domain: state.trustDomain,
        roots: [...bundlePem],
        sequence: String(state.bundleSequence),
        refresh_hint_seconds: deps.refreshHintSeconds,
      };
    },
  });
}
