// Where decisions are evaluated: the Evaluator contract, and its in-thread implementation on the event loop.
import { type JsonDecision, PolicyEngine, type Revision } from '@portcullis/engine';
import type { RevisionTarget } from '@portcullis/policy-sync';

/**
 * Evaluates compiled entrypoints. What callers may rely on:
 * - `load` has PolicyEngine's contract (atomic swap per bundle, loads of one bundle in call
 *   order, a failed load keeps the previous revision); it resolves once every decision started
 *   afterwards sees the new revision.
 * - `evaluate` takes a normalized entrypoint (`envoy/authz/allow`) and the input as JSON text
 *   (already validated by the caller), and throws (or rejects with) an EngineError.
 *   It returns synchronously when it can: callers must accept both a value and a promise.
 */
export interface Evaluator extends RevisionTarget {
  readonly kind: 'in-thread' | 'worker-pool';
  evaluate(entrypoint: string, inputJson: string | undefined): JsonDecision | Promise<JsonDecision>;
  /** Entrypoints the bundle's loaded revision serves (for revisions that declare none). */
  entrypoints(bundle: string): string[];
  close(): Promise<void>;
}

/**
 * Evaluation on the calling thread. A decision of the example policies takes a few microseconds
 * of WASM, so the event loop is not stalled by a decision, but it is by instantiating a large
 * revision (tens of milliseconds for 10,000 RBAC bindings). bench/pdp compares this with the
 * worker pool: this is faster for callers in the same process and has the lower p99 over HTTP;
 * the pool serves more decisions per second over HTTP and gRPC on 2 cores.
 */
export class InThreadEvaluator implements Evaluator {
  readonly kind = 'in-thread' as const;
  readonly engine: PolicyEngine;

  constructor(engine: PolicyEngine = new PolicyEngine()) {
    this.engine = engine;
  }

  load(rev: Revision): Promise<boolean> {
    return this.engine.load(rev);
  }

  evaluate(entrypoint: string, inputJson: string | undefined): JsonDecision {
    return this.engine.evaluateJson(entrypoint, inputJson);
  }

  entrypoints(bundle: string): string[] {
    return [...(this.engine.loaded()[bundle]?.entrypoints ?? [])];
  }

  async close(): Promise<void> {}
}
