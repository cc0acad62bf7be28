// Trying a stored revision on an input, in-process through the engine, with recently used revisions kept loaded.
import { isEngineError, type LoadedPolicy, loadRevision, type Revision } from '@portcullis/engine';
import { PortcullisError } from '@portcullis/runtime';

export interface EvaluationOutcome {
  result: unknown;
  revision: number;
  evalNs: number;
}

/**
 * Evaluates revisions by (bundle, revision, digest). A revision is immutable, so a loaded
 * instance stays valid for as long as it is cached; the least recently used is dropped past
 * `capacity`. Loads of one revision in flight are shared, so a burst of calls compiles it once.
 */
export class RevisionEvaluator {
  private readonly loaded = new Map<string, Promise<LoadedPolicy>>();

  constructor(private readonly capacity: number) {}

  async evaluate(rev: Revision, entrypoint: string, input: unknown): Promise<EvaluationOutcome> {
    const policy = await this.load(rev);
    try {
      const decision = policy.evaluate(entrypoint, input);
      return { result: decision.result, revision: decision.revision, evalNs: decision.evalNs };
    } catch (err) {
      throw toApiError(err, entrypoint, rev);
    }
  }

  private load(rev: Revision): Promise<LoadedPolicy> {
    const key = `${rev.bundle}\u0000${rev.digest}`;
    const cached = this.loaded.get(key);
    if (cached) {
      // Re-insert: Map iteration order is insertion order, which makes the first key the LRU one.
      this.loaded.delete(key);
      this.loaded.set(key, cached);
      return cached;
    }
    const p = loadRevision(rev).catch((err: unknown) => {
      this.loaded.delete(key);
      throw toApiError(err, undefined, rev);
    });
    this.loaded.set(key, p);
    while (this.loaded.size > this.capacity) {
      const oldest = this.loaded.keys().next().value;
      if (oldest === undefined) break;
      this.loaded.delete(oldest);
    }
    return p;
  }
}

function toApiError(err: unknown, entrypoint: string | undefined, rev: Revision): PortcullisError {
  if (err instanceof PortcullisError) return err;
  if (isEngineError(err)) {
    switch (err.code) {
      case 'entrypoint_not_found':
      case 'invalid_path':
        return new PortcullisError('validation_failed', `body.entrypoint: ${err.message}`, {
          details: [{ field: 'body.entrypoint', message: err.message, entrypoints: rev.entrypoints }],
          cause: err,
        });
      case 'invalid_input':
        return new PortcullisError('validation_failed', `body.input: ${err.message}`, {
          details: [{ field: 'body.input', message: err.message }],
          cause: err,
        });
      default:
        return new PortcullisError(
          'evaluation_error',
          `revision ${rev.revision} of ${rev.bundle}${entrypoint ? ` at ${entrypoint}` : ''}: ${err.message}`,
          { details: [{ engine_code: err.code, message: err.message }], cause: err },
        );
    }
  }
  return new PortcullisError(
    'evaluation_error',
    `evaluation failed: ${(err as Error).message ?? String(err)}`,
    {
      cause: err,
    },
  );
}
