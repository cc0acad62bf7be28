// Client of the PAP's gRPC PolicyDistribution: the active revisions, and bundle archives streamed by digest.
import {
  fromGrpcError,
  grpc,
  loadProtos,
  PortcullisError,
  serverStream,
  serviceClient,
  unary,
} from '@portcullis/runtime';
import { type Activation, parseActivation } from './activation.ts';

export const DISTRIBUTION_PROTO = 'portcullis/pap/v1/distribution.proto';
export const DISTRIBUTION_SERVICE = 'portcullis.pap.v1.PolicyDistribution';

/** What PolicySync needs from the PAP; a fake (for fault injection) implements the same. */
export interface PolicySource {
  /** Active revisions of every bundle (unordered). Rejects with a PortcullisError when the PAP cannot answer. */
  getActive(): Promise<Activation[]>;
  /** The bundle archive with that digest, unverified: the caller checks the digest. */
  fetchBundle(bundle: string, digest: string, opts?: FetchOptions): Promise<Buffer>;
  close(): void;
}

export interface FetchOptions {
  /** Largest archive accepted; a larger one rejects with `payload_too_large` (default 256 MiB). */
  maxBytes?: number;
  /** Default 30 s. */
  deadlineMs?: number;
  /** Cancels the transfer (rejects with `unavailable`). */
  signal?: AbortSignal;
}

export interface DistributionClientOptions {
  credentials?: grpc.ChannelCredentials;
  /** Deadline of GetActive (default 5 s). */
  deadlineMs?: number;
}

/**
 * grpc-js backs off reconnecting up to 120 s by default: after a long PAP outage a decision point
 * would then wait minutes to notice the PAP is back. Reconcile retries on its own schedule, so the
 * channel only needs to try promptly when asked.
 */
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.min_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 2000,
  'grpc.max_receive_message_length': 4 * 1024 * 1024,
};

interface BundleChunk {
  data: Buffer;
  total_size?: string;
}

export class DistributionClient implements PolicySource {
  private readonly client: grpc.Client;
  private readonly deadlineMs: number;

  constructor(
    readonly address: string,
    opts: DistributionClientOptions = {},
  ) {
    const Client = serviceClient(loadProtos([DISTRIBUTION_PROTO]), DISTRIBUTION_SERVICE);
    this.client = new Client(address, opts.credentials ?? grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    this.deadlineMs = opts.deadlineMs ?? 5000;
  }

  async getActive(): Promise<Activation[]> {
    const res = await unary<{ bundle: string }, { active: unknown[] }>(
      this.client,
      'GetActive',
      { bundle: '' },
      { deadlineMs: this.deadlineMs },
    );
    return (res.active ?? []).map(parseActivation);
  }

  fetchBundle(bundle: string, digest: string, opts: FetchOptions = {}): Promise<Buffer> {
    const maxBytes = opts.maxBytes ?? 256 * 1024 * 1024;
    const stream = serverStream(
      this.client,
      'FetchBundle',
      { bundle, digest },
      { deadlineMs: opts.deadlineMs ?? 30_000 },
    );
    return new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let settled = false;
      // Removed on settling: the signal outlives every fetch, and a listener left on it would keep
      // this fetch's chunks (the whole archive) alive for as long as the process runs.
      const onAbort = (): void => fail(new PortcullisError('unavailable', 'fetch cancelled'));
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        opts.signal?.removeEventListener('abort', onAbort);
        return true;
      };
      const fail = (err: PortcullisError): void => {
        if (!settle()) return;
        stream.cancel();
        reject(err);
      };
      const tooLarge = (n: number): PortcullisError =>
        new PortcullisError(
          'payload_too_large',
          `bundle ${bundle} is ${n} bytes, over the ${maxBytes}-byte limit`,
        );
      stream.on('data', (chunk: BundleChunk) => {
        const announced = chunk.total_size === undefined ? 0 : Number(chunk.total_size);
        if (announced > maxBytes) return fail(tooLarge(announced));
        size += chunk.data.length;
        if (size > maxBytes) return fail(tooLarge(size));
        chunks.push(chunk.data);
      });
      stream.on('error', (err: grpc.ServiceError) => {
        if (settle()) reject(fromGrpcError(err));
      });
      stream.on('end', () => {
        if (settle()) resolve(Buffer.concat(chunks, size));
      });
      if (opts.signal?.aborted) onAbort();
      else opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  close(): void {
    this.client.close();
  }
}
