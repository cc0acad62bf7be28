// gRPC PolicyDistribution: decision points read active revisions and stream bundles by digest.
import { type GrpcServer, type grpc, loadProtos, PortcullisError, serviceClient } from '@portcullis/runtime';
import type { BundleStore } from './bundle-store.ts';
import { BUNDLE_NAME_PATTERN } from './schemas.ts';

export const DISTRIBUTION_PROTO = 'portcullis/pap/v1/distribution.proto';
export const DISTRIBUTION_SERVICE = 'portcullis.pap.v1.PolicyDistribution';

/** Bundle bytes per streamed message: well under gRPC's 4 MiB default receive limit. */
export const CHUNK_BYTES = 64 * 1024;

const BUNDLE_NAME = new RegExp(BUNDLE_NAME_PATTERN);
const DIGEST = /^[0-9a-f]{64}$/;

interface GetActiveRequest {
  bundle: string;
}
interface FetchBundleRequest {
  bundle: string;
  digest: string;
}

function checkBundle(name: string): void {
  if (!BUNDLE_NAME.test(name)) {
    throw new PortcullisError('validation_failed', `bundle: ${JSON.stringify(name)} is not a bundle name`, {
      details: [{ field: 'bundle', message: `must match ${BUNDLE_NAME_PATTERN}` }],
    });
  }
}

/** Resolves when the stream can take more, so a slow reader does not make the PAP buffer a whole bundle. */
function drained(call: grpc.ServerWritableStream<unknown, unknown>): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      call.off('error', onError);
      resolve();
    };
    const onError = (err: unknown) => {
      call.off('drain', onDrain);
      reject(err);
    };
    call.once('drain', onDrain);
    call.once('error', onError);
  });
}

/**
 * Adds PolicyDistribution to `server`. It is unauthenticated: it serves only what decision points
 * need (active pointers and immutable bundles by digest) and is meant for the internal port; mTLS
 * with workload certificates is the CA issue's job.
 */
export function addDistributionService(server: GrpcServer, store: BundleStore): void {
  const pkg = loadProtos([DISTRIBUTION_PROTO]);
  const service = serviceClient(pkg, DISTRIBUTION_SERVICE).service;
  server.addService(service, {
    /** One bundle's active revision (NOT_FOUND for an unknown bundle, empty when none is active), or all. */
    GetActive: async (request: GetActiveRequest) => {
      if (request.bundle) checkBundle(request.bundle);
      const active = await store.active(request.bundle || undefined);
      return {
        active: active.map((a) => ({
          bundle: a.bundle,
          revision: a.revision,
          digest: a.digest,
          activation_seq: a.activationSeq,
          activated_at: a.activatedAt.toISOString(),
          entrypoints: a.entrypoints,
        })),
      };
    },
    /** Streams the stored .tar.gz in CHUNK_BYTES pieces; `total_size` on the first. */
    FetchBundle: async (request: FetchBundleRequest, call: grpc.ServerWritableStream<unknown, unknown>) => {
      checkBundle(request.bundle);
      if (!DIGEST.test(request.digest)) {
        throw new PortcullisError('validation_failed', 'digest must be 64 lowercase hex digits (sha256)', {
          details: [{ field: 'digest', message: 'not a sha256 hex digest' }],
        });
      }
      const bytes = await store.archiveByDigest(request.bundle, request.digest);
      for (let offset = 0; offset < bytes.length || offset === 0; offset += CHUNK_BYTES) {
        if (call.cancelled) return;
        const data = bytes.subarray(offset, offset + CHUNK_BYTES);
        const ok = call.write(offset === 0 ? { data, total_size: String(bytes.length) } : { data });
        if (!ok) await drained(call);
        if (bytes.length === 0) break;
      }
    },
  });
}
