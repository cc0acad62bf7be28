// The one error type the engine throws: a stable snake_case code, a message, optional details and cause.

/** Every code the engine can throw; callers (PAP, PDP) map these to their API errors. */
export type EngineErrorCode =
  | 'digest_mismatch'
  | 'invalid_wasm'
  | 'invalid_bundle'
  | 'invalid_input'
  | 'invalid_path'
  | 'entrypoint_not_found'
  | 'entrypoint_conflict'
  | 'builtin_unsupported'
  | 'builtin_error'
  | 'eval_failed'
  | 'compile_failed'
  | 'compile_timeout'
  | 'bundle_not_loaded';

export class EngineError extends Error {
  override readonly name = 'EngineError';
  readonly code: EngineErrorCode;
  readonly details: unknown;

  constructor(code: EngineErrorCode, message: string, options: { details?: unknown; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }
}

export function isEngineError(err: unknown, code?: EngineErrorCode): err is EngineError {
  return err instanceof EngineError && (code === undefined || err.code === code);
}
