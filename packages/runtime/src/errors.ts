// The one error type of Portcullis: a stable snake_case code, its HTTP and gRPC status, and a cause.
import { status as GrpcStatus } from '@grpc/grpc-js';

export interface ErrorCodeSpec {
  http: number;
  grpc: GrpcStatus;
  description: string;
}

/**
 * Every error code any service answers with. Codes are part of the API contract: never rename
 * one; add a new one instead. A test checks that each is documented in the API docs.
 */
export const ERROR_CODES = {
  bad_request: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, description: 'The request is malformed.' },
  validation_failed: {
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
    description: 'A field failed validation; details name each field.',
  },
  rego_compile_error: {
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
    description: 'Rego parse or type errors; details carry file, row, col and message.',
  },
  invalid_bundle: {
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
    description: 'The bundle archive or its layout is invalid (bad tarball, path escaping the bundle).',
  },
  unauthenticated: {
    http: 401,
    grpc: GrpcStatus.UNAUTHENTICATED,
    description: 'No credentials, or credentials that are not valid.',
  },
  forbidden: { http: 403, grpc: GrpcStatus.PERMISSION_DENIED, description: 'The caller may not do this.' },
  not_found: { http: 404, grpc: GrpcStatus.NOT_FOUND, description: 'The resource does not exist.' },
  conflict: { http: 409, grpc: GrpcStatus.ABORTED, description: 'The resource changed concurrently.' },
  precondition_failed: {
    http: 412,
    grpc: GrpcStatus.FAILED_PRECONDITION,
    description: 'If-Match did not match the current ETag.',
  },
  precondition_required: {
    http: 428,
    grpc: GrpcStatus.FAILED_PRECONDITION,
    description: 'The call needs an If-Match header.',
  },
  payload_too_large: {
    http: 413,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
    description: 'The body is over the configured limit.',
  },
  unsupported_media_type: {
    http: 415,
    grpc: GrpcStatus.INVALID_ARGUMENT,
    description: 'The content type is not accepted here.',
  },
  rego_test_failed: {
    http: 422,
    grpc: GrpcStatus.FAILED_PRECONDITION,
    description: "The bundle's Rego tests failed or errored; details name each test and its location.",
  },
  unsupported_builtin: {
    http: 422,
    grpc: GrpcStatus.FAILED_PRECONDITION,
    description: 'The policy calls a builtin that neither the WASM target nor the engine can run.',
  },
  entrypoint_undefined: {
    http: 422,
    grpc: GrpcStatus.FAILED_PRECONDITION,
    description: 'A declared entrypoint is not defined by any rule.',
  },
  digest_mismatch: {
    http: 422,
    grpc: GrpcStatus.DATA_LOSS,
    description: 'Bundle bytes do not match the expected sha256 digest.',
  },
  evaluation_error: {
    http: 500,
    grpc: GrpcStatus.INTERNAL,
    description: 'The policy failed while evaluating.',
  },
  too_many_requests: {
    http: 429,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
    description: 'Concurrency limit reached; retry later.',
  },
  timeout: { http: 504, grpc: GrpcStatus.DEADLINE_EXCEEDED, description: 'A deadline passed.' },
  unavailable: {
    http: 503,
    grpc: GrpcStatus.UNAVAILABLE,
    description: 'A dependency (database, bus, upstream) is not available.',
  },
  internal: { http: 500, grpc: GrpcStatus.INTERNAL, description: 'An unexpected error; see the logs.' },
} as const satisfies Record<string, ErrorCodeSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorDetail {
  [key: string]: unknown;
}

export class PortcullisError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetail[];

  constructor(code: ErrorCode, message: string, options: { details?: ErrorDetail[]; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PortcullisError';
    this.code = code;
    this.details = options.details ?? [];
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].http;
  }

  get grpcStatus(): GrpcStatus {
    return ERROR_CODES[this.code].grpc;
  }

  /** The JSON body every HTTP API answers errors with. */
  toJSON(): { code: ErrorCode; message: string; details: ErrorDetail[] } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isPortcullisError(err: unknown): err is PortcullisError {
  return err instanceof PortcullisError;
}

/** Wraps anything thrown into a PortcullisError, keeping the original as the cause. */
export function toPortcullisError(err: unknown): PortcullisError {
  if (err instanceof PortcullisError) return err;
  return new PortcullisError('internal', 'internal error', { cause: err });
}
