// A PolicyDistribution gRPC server over archives held in memory: for tests, fault injection and offline demos.
import { sha256Hex } from '@portcullis/bundle';
import {
  GrpcServer,
  type grpc,
  type Logger,
  loadProtos,
  PortcullisError,
  type ServiceMetrics,
  serviceClient,
} from '@portcullis/runtime';
import type { Activation } from './activation.ts';
import { DISTRIBUTION_PROTO, DISTRIBUTION_SERVICE } from './distribution-client.ts';

export interface StaticActivation {
  bundle: string;
  revision: number;
  /** Announced digest; defaults to the archive's real sha256 (pass another to serve tampered bytes). */
  digest?: string;
  activatedAt?: Date;
}

/**
 * Speaks the PAP's PolicyDistribution contract from memory: `activate` makes an archive the
 * active revision of its bundle with the next activation sequence number, and FetchBundle serves
 * the archive registered under the requested digest. Unlike the PAP, it serves whatever bytes it
 * was given under whatever digest it was told, which is the point for fault injection.
 */
export class StaticPolicyDistribution {
  private readonly server: GrpcServer;
  private readonly active = new Map<string, Activation>();
  private readonly archives = new Map<string, Buffer>();
  private seq = 0;
  /** GetActive calls answered; tests use it to see reconciles happen. */
  getActiveCalls = 0;
  /** While true, every call fails with UNAVAILABLE (a PAP that is down). */
  failing = false;

  constructor(opts: { logger: Logger; metrics: ServiceMetrics }) {
    this.server = new GrpcServer(opts);
    const service = serviceClient(loadProtos([DISTRIBUTION_PROTO]), DISTRIBUTION_SERVICE).service;
    this.server.addService(service, {
      GetActive: async () => {
        this.check();
        this.getActiveCalls++;
        return {
          active: [...this.active.values()].map((a) => ({
            bundle: a.bundle,
            revision: a.revision,
            digest: a.digest,
            activation_seq: String(a.activationSeq),
            activated_at: a.activatedAt?.toISOString() ?? '',
            entrypoints: a.entrypoints ?? [],
          })),
        };
      },
      FetchBundle: async (
        req: { bundle: string; digest: string },
        call: grpc.ServerWritableStream<unknown, unknown>,
      ) => {
        this.check();
        const bytes = this.archives.get(`${req.bundle}@${req.digest}`);
        if (!bytes)
          throw new PortcullisError('not_found', `no revision of ${req.bundle} with digest ${req.digest}`);
        const chunk = 64 * 1024;
        for (let offset = 0; offset === 0 || offset < bytes.length; offset += chunk) {
          const data = bytes.subarray(offset, offset + chunk);
          call.write(offset === 0 ? { data, total_size: String(bytes.length) } : { data });
          if (bytes.length === 0) break;
        }
      },
    });
  }

  /** Makes `archive` the active revision of its bundle; returns the activation (what an event would carry). */
  activate(archive: Buffer, a: StaticActivation): Activation {
    const digest = a.digest ?? sha256Hex(archive);
    this.archives.set(`${a.bundle}@${digest}`, archive);
    const activation: Activation = {
      bundle: a.bundle,
      revision: a.revision,
      digest,
      activationSeq: ++this.seq,
      activatedAt: a.activatedAt ?? new Date(),
    };
    this.active.set(a.bundle, activation);
    return activation;
  }

  /** Binds and returns `host:port`. */
  async listen(host = '127.0.0.1', port = 0): Promise<string> {
    const bound = await this.server.bind(`${host}:${port}`);
    return `${host}:${bound}`;
  }

  close(): Promise<void> {
    return this.server.shutdown(1000);
  }

  private check(): void {
    if (this.failing) throw new PortcullisError('unavailable', 'distribution is failing on purpose');
  }
}
