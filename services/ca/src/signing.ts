// Where CSRs are validated and certificates signed: on the event loop, or in a pool of threads.
import { availableParallelism } from 'node:os';
import {
  type IssuedCertificate,
  type IssueRequest,
  type IssuerOptions,
  PKI_ERROR_CODES,
  PkiError,
  type PkiErrorCode,
} from '@portcullis/pki';
import { type Logger, type ThreadError, ThreadPool } from '@portcullis/runtime';
import type { ActiveAuthority, CaAuthority } from './ca-authority.ts';

/** Issues with the authority's current issuer; throws (rejects with) PkiError like `Issuer.issue`. */
export interface CertificateSigner {
  issue(request: IssueRequest): Promise<IssuedCertificate>;
  close(): Promise<void>;
}

/** On the event loop: the authority's own Issuer (its clock included, which tests move). */
export function eventLoopSigner(authority: CaAuthority): CertificateSigner {
  return {
    issue: async (request) => authority.current().issuer.issue(request),
    close: async () => {},
  };
}

function revivePkiError(error: ThreadError): Error {
  const code = error.fields.code;
  if (error.name === 'PkiError' && typeof code === 'string' && Object.hasOwn(PKI_ERROR_CODES, code)) {
    return new PkiError(code as PkiErrorCode, error.message);
  }
  return new Error(`certificate signing thread: ${error.message}`);
}

const THREAD = new URL('./signing-thread.ts', import.meta.url);

/**
 * In threads: a CSR's key import and self-signature check cost several signatures, so they run
 * beside the event loop. Every thread holds the current issuer; a change of authority reaches the
 * threads before any request that follows it (messages to a thread are handled in order).
 */
export async function threadSigner(
  authority: CaAuthority,
  threads: number,
  logger: Logger,
): Promise<CertificateSigner> {
  const pool = new ThreadPool<IssuerOptions, IssueRequest, IssuedCertificate>(THREAD, {
    // By default the event loop keeps a CPU for gRPC and the records: on 2 CPUs one signing thread had
    // the same throughput as two and a lower p99 (bench/ca, same machine, back to back).
    size: threads > 0 ? threads : Math.max(1, Math.min(4, availableParallelism() - 1)),
    reviveError: revivePkiError,
  });
  const configure = (active: ActiveAuthority) => pool.configure('issuer', active.issuer.portableOptions());
  try {
    await configure(authority.current());
  } catch (error) {
    await pool.close();
    throw error;
  }
  // The authority built this issuer already, so a thread refusing it means a thread in trouble: say so.
  const onChange = (active: ActiveAuthority) =>
    void configure(active).catch((error: unknown) =>
      logger.error({ err: error }, 'a signing thread could not take the new authority'),
    );
  authority.on('changed', onChange);
  return {
    issue: (request) => pool.run(request),
    async close() {
      authority.off('changed', onChange);
      await pool.close();
    },
  };
}
