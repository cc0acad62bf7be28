// gRPC server and client helpers: proto loading, error mapping, deadlines, metrics, trace context.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { context, propagation } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { ERROR_CODES, type ErrorCode, PortcullisError, toPortcullisError } from './errors.ts';
import type { ServiceMetrics } from './metrics.ts';

export { grpc };

/** The repository's `proto/` folder: our own contracts (`portcullis.<service>.v1`). */
export const PROTO_ROOT = fileURLToPath(new URL('../../../proto', import.meta.url));

export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
};

/** Loads proto files (relative to `includeDirs`, by default our `proto/`) into grpc-js definitions. */
export function loadProtos(files: string[], includeDirs: string[] = [PROTO_ROOT]): grpc.GrpcObject {
  const def = protoLoader.loadSync(files, { ...PROTO_LOADER_OPTIONS, includeDirs });
  return grpc.loadPackageDefinition(def);
}

/** `host:port` as gRPC addresses and URLs spell it: IPv6 hosts in brackets. */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Looks up `a.b.c.Service` in a loaded package object. */
export function serviceClient(pkg: grpc.GrpcObject, fullName: string): grpc.ServiceClientConstructor {
  let node: unknown = pkg;
  for (const part of fullName.split('.')) node = (node as Record<string, unknown> | undefined)?.[part];
  if (typeof node !== 'function' || !('service' in node))
    throw new Error(`gRPC service ${fullName} not found`);
  return node as grpc.ServiceClientConstructor;
}

type UnaryImpl = (request: never, call: grpc.ServerUnaryCall<unknown, unknown>) => Promise<unknown>;
type StreamImpl = (request: never, call: grpc.ServerWritableStream<unknown, unknown>) => Promise<void>;
export type HandlerMap = Record<string, UnaryImpl | StreamImpl>;

export interface GrpcServerOptions {
  logger: Logger;
  metrics: ServiceMetrics;
  options?: grpc.ServerOptions;
}

/**
 * A grpc-js server whose handlers are plain async functions: a resolved value is the response,
 * a thrown PortcullisError becomes its gRPC status (anything else is INTERNAL and logged).
 * Server-streaming handlers write to `call` and resolve when done.
 */
export class GrpcServer {
  readonly server: grpc.Server;
  private readonly opts: GrpcServerOptions;

  constructor(opts: GrpcServerOptions) {
    this.opts = opts;
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
      ...opts.options,
    });
  }

  addService(service: grpc.ServiceDefinition, handlers: HandlerMap): void {
    const impl: grpc.UntypedServiceImplementation = {};
    for (const [name, method] of Object.entries(service)) {
      const handler = handlers[name] ?? handlers[method.originalName ?? ''];
      if (!handler) continue;
      impl[name] = method.responseStream
        ? this.wrapStream(method.path, handler as StreamImpl)
        : this.wrapUnary(method.path, handler as UnaryImpl);
    }
    this.server.addService(service, impl);
  }

  /** Binds insecurely (or with `credentials`) and resolves the bound port (port 0 picks one). */
  bind(address: string, credentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
    });
  }

  /** Stops accepting calls, waits for in-flight ones up to `deadlineMs`, then forces. */
  shutdown(deadlineMs = 5000): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, deadlineMs);
      timer.unref();
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private observe(path: string, started: bigint, code: grpc.status): void {
    const labels = { method: path, code: grpc.status[code] ?? String(code) };
    this.opts.metrics.grpcRequests.inc(labels);
    this.opts.metrics.grpcDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
  }

  private failure(path: string, err: unknown): grpc.ServiceError {
    const pe = toPortcullisError(err);
    if (pe.code === 'internal') this.opts.logger.error({ err, method: path }, 'gRPC handler failed');
    const metadata = new grpc.Metadata();
    metadata.set('portcullis-error-code', pe.code);
    return Object.assign(new Error(pe.message), { code: pe.grpcStatus, details: pe.message, metadata });
  }

  private wrapUnary(path: string, handler: UnaryImpl): grpc.handleUnaryCall<unknown, unknown> {
    return (call, callback) => {
      const started = process.hrtime.bigint();
      const parent = propagation.extract(context.active(), call.metadata.getMap());
      context
        .with(parent, () => handler(call.request as never, call))
        .then(
          (res) => {
            this.observe(path, started, grpc.status.OK);
            callback(null, res);
          },
          (err: unknown) => {
            const e = this.failure(path, err);
            this.observe(path, started, e.code);
            callback(e);
          },
        );
    };
  }

  private wrapStream(path: string, handler: StreamImpl): grpc.handleServerStreamingCall<unknown, unknown> {
    return (call) => {
      const started = process.hrtime.bigint();
      const parent = propagation.extract(context.active(), call.metadata.getMap());
      context
        .with(parent, () => handler(call.request as never, call))
        .then(
          () => {
            this.observe(path, started, grpc.status.OK);
            call.end();
          },
          (err: unknown) => {
            const e = this.failure(path, err);
            this.observe(path, started, e.code);
            call.emit('error', e);
          },
        );
    };
  }
}

export interface CallOptions {
  /** Deadline for the whole call; every client call has one. */
  deadlineMs?: number;
  metadata?: grpc.Metadata;
}

const DEFAULT_DEADLINE_MS = 5000;

function callMetadata(opts: CallOptions): grpc.Metadata {
  const md = opts.metadata?.clone() ?? new grpc.Metadata();
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  for (const [k, v] of Object.entries(carrier)) md.set(k, v);
  return md;
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, res?: Res) => void,
) => grpc.ClientUnaryCall;

/** Calls a unary method with a deadline and trace context; failures become PortcullisErrors. */
export function unary<Req, Res>(
  client: grpc.Client,
  method: string,
  request: Req,
  opts: CallOptions = {},
): Promise<Res> {
  const fn = (client as unknown as Record<string, UnaryMethod<Req, Res>>)[method];
  if (typeof fn !== 'function') return Promise.reject(new Error(`gRPC method ${method} not found on client`));
  const deadline = new Date(Date.now() + (opts.deadlineMs ?? DEFAULT_DEADLINE_MS));
  return new Promise((resolve, reject) => {
    fn.call(client, request, callMetadata(opts), { deadline }, (err, res) => {
      if (err) reject(fromGrpcError(err));
      else resolve(res as Res);
    });
  });
}

/** Opens a server stream with a deadline and trace context. */
export function serverStream<Req>(
  client: grpc.Client,
  method: string,
  request: Req,
  opts: CallOptions = {},
): grpc.ClientReadableStream<unknown> {
  const fn = (
    client as unknown as Record<
      string,
      (r: Req, m: grpc.Metadata, o: grpc.CallOptions) => grpc.ClientReadableStream<unknown>
    >
  )[method];
  if (typeof fn !== 'function') throw new Error(`gRPC method ${method} not found on client`);
  const deadline = new Date(Date.now() + (opts.deadlineMs ?? DEFAULT_DEADLINE_MS));
  return fn.call(client, request, callMetadata(opts), { deadline });
}

const BY_GRPC_STATUS: Partial<Record<grpc.status, ErrorCode>> = {
  [grpc.status.DEADLINE_EXCEEDED]: 'timeout',
  [grpc.status.UNAVAILABLE]: 'unavailable',
  [grpc.status.NOT_FOUND]: 'not_found',
  [grpc.status.INVALID_ARGUMENT]: 'bad_request',
  [grpc.status.PERMISSION_DENIED]: 'forbidden',
  [grpc.status.UNAUTHENTICATED]: 'unauthenticated',
  [grpc.status.RESOURCE_EXHAUSTED]: 'too_many_requests',
  [grpc.status.DATA_LOSS]: 'digest_mismatch',
};

/** A client-side gRPC failure as a PortcullisError, keeping the server's code when it sent one. */
export function fromGrpcError(err: grpc.ServiceError): PortcullisError {
  const sent = err.metadata?.get('portcullis-error-code')[0];
  const code: ErrorCode =
    typeof sent === 'string' && sent in ERROR_CODES
      ? (sent as ErrorCode)
      : (BY_GRPC_STATUS[err.code] ?? 'internal');
  return new PortcullisError(code, err.details || err.message, { cause: err });
}
