// SPIFFE ID parsing and validation (SPIFFE-ID spec §2) and the Istio-style workload form /ns/<ns>/sa/<sa>.
import { PkiError, type PkiErrorCode } from './pki-error.ts';

/** Both limits are from the SPIFFE-ID spec (§2.1 trust domain, §2.3 whole ID as a URI SAN). */
export const MAX_TRUST_DOMAIN_LENGTH = 255;
export const MAX_SPIFFE_ID_LENGTH = 2048;

const SCHEME = 'spiffe://';
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;

export interface SpiffeId {
  readonly id: string;
  readonly trustDomain: string;
  /** '' or '/seg/seg…' */
  readonly path: string;
}

export interface WorkloadIdentityName {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

export interface WorkloadSpiffeId extends WorkloadIdentityName {
  readonly spiffeId: string;
}

// Values are cut before being quoted back so a hostile SAN cannot flood logs.
function shown(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

export function trustDomainProblem(trustDomain: string): string | undefined {
  if (trustDomain.length === 0) return 'the trust domain is empty';
  if (trustDomain.length > MAX_TRUST_DOMAIN_LENGTH) {
    return `the trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} characters`;
  }
  if (!TRUST_DOMAIN.test(trustDomain)) {
    return 'the trust domain may only hold lowercase letters, digits, ".", "-" and "_"';
  }
  return undefined;
}

function segmentProblem(segment: string): string | undefined {
  if (segment.length === 0) return 'the path has an empty segment';
  if (segment === '.' || segment === '..') return 'the path has a "." or ".." segment';
  if (!PATH_SEGMENT.test(segment)) {
    return 'path segments may only hold letters, digits, ".", "-" and "_" (no query, fragment or percent-encoding)';
  }
  return undefined;
}

/** Throws PkiError(`code`) naming the first rule `value` breaks. */
export function parseSpiffeId(value: string, code: PkiErrorCode = 'spiffe_id_invalid'): SpiffeId {
  const fail = (why: string): never => {
    throw new PkiError(code, `${shown(value)} is not a SPIFFE ID: ${why}`);
  };
  if (value.length > MAX_SPIFFE_ID_LENGTH) fail(`it is longer than ${MAX_SPIFFE_ID_LENGTH} bytes`);
  if (!value.startsWith(SCHEME)) fail('the scheme must be "spiffe://" in lowercase');
  const rest = value.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  const tdProblem = trustDomainProblem(trustDomain);
  if (tdProblem !== undefined) {
    fail(/[:@]/.test(trustDomain) ? 'a port or user info is not allowed' : tdProblem);
  }
  if (path !== '') {
    if (path.endsWith('/')) fail('a trailing "/" is not allowed');
    for (const segment of path.slice(1).split('/')) {
      const problem = segmentProblem(segment);
      if (problem !== undefined) fail(problem);
    }
  }
  return { id: value, trustDomain, path };
}

/** A SPIFFE ID that is exactly spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>. */
export function parseWorkloadSpiffeId(
  value: string,
  code: PkiErrorCode = 'spiffe_id_invalid',
): WorkloadSpiffeId {
  const { trustDomain, path } = parseSpiffeId(value, code);
  const segments = path.split('/');
  const [, ns, namespace, sa, serviceAccount] = segments;
  if (
    segments.length !== 5 ||
    ns !== 'ns' ||
    sa !== 'sa' ||
    namespace === undefined ||
    serviceAccount === undefined
  ) {
    throw new PkiError(
      code,
      `${shown(value)} is not a workload SPIFFE ID: the path must be /ns/<namespace>/sa/<service-account>`,
    );
  }
  return { spiffeId: value, trustDomain, namespace, serviceAccount };
}

export function formatWorkloadSpiffeId(
  name: WorkloadIdentityName,
  code: PkiErrorCode = 'spiffe_id_invalid',
): string {
  return parseWorkloadSpiffeId(
    `${SCHEME}${name.trustDomain}/ns/${name.namespace}/sa/${name.serviceAccount}`,
    code,
  ).spiffeId;
}

export function assertTrustDomain(trustDomain: string, code: PkiErrorCode = 'spiffe_id_invalid'): string {
  const problem = trustDomainProblem(trustDomain);
  if (problem !== undefined)
    throw new PkiError(code, `${shown(trustDomain)} is not a trust domain: ${problem}`);
  return trustDomain;
}
