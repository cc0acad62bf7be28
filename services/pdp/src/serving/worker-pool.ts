// Evaluation in a pool of worker threads, each holding its own engine kept current with the same revisions.
import { availableParallelism } from 'node:os';
import { EngineError, type EngineErrorCode, type JsonDecision, type Revision } from '@portcullis/engine';
import { type ThreadError, ThreadPool } from '@portcullis/runtime';
import type { Evaluator } from './evaluator.ts';
import type { Evaluation, LoadAnswer } from './worker-protocol.ts';

function reviveEngineError(error: ThreadError): Error {
  const { code, details } = error.fields;
  if (error.name === 'EngineError' && typeof code === 'string') {
    return new EngineError(code as EngineErrorCode, error.message, { details });
  }
  return new Error(error.message);
}

/**
 * The revision as the main thread keeps it for its threads: data as JSON text (serialized once here
 * when given as an object), never an object graph to clone.
 */
function forThreads(rev: Revision): Revision {
  if (rev.dataJson !== undefined) return { ...rev, data: undefined };
  let dataJson: string;
  try {
    dataJson = JSON.stringify(rev.data ?? {});
  } catch (cause) {
    throw new EngineError('invalid_bundle', `data is not JSON-serializable: ${(cause as Error).message}`, {
      cause,
    });
  }
  return { ...rev, data: undefined, dataJson: Buffer.from(dataJson) };
}

/**
 * A load message for one thread: the module and the data's text copied side by side into one
 * ArrayBuffer that is transferred, not cloned. A clone would serialize the bytes into a buffer grown
 * by reallocation and copy them out again on the other side; a transfer hands the one allocation
 * over, and the thread's engine copies the text straight into its module's memory. Not one
 * SharedArrayBuffer for all threads: a shared backing store is freed only when every thread has
 * collected its handle, and an idle thread collects rarely (RSS grew by the bundle's size per swap).
 */
function loadMessage(rev: Revision): { message: Revision; transfer: ArrayBuffer[] } {
  const text = rev.dataJson!;
  const dataLength = typeof text === 'string' ? Buffer.byteLength(text) : text.byteLength;
  const bytes = new ArrayBuffer(rev.wasm.byteLength + dataLength);
  const wasm = new Uint8Array(bytes, 0, rev.wasm.byteLength);
  wasm.set(rev.wasm);
  const dataJson = new Uint8Array(bytes, rev.wasm.byteLength, dataLength);
  if (typeof text === 'string') Buffer.from(bytes, rev.wasm.byteLength, dataLength).write(text);
  else dataJson.set(text);
  return { message: { ...rev, wasm, dataJson }, transfer: [bytes] };
}

/**
 * A thread's heap holds its engine and the messages in flight, little else; left to itself V8 doubles each
 * thread's young generation (16 → 32 MiB) under the allocations of swaps and load, and keeps it: a thread's
 * heap went from 36 to 57 MiB over 100 RBAC swaps, against 28 to 33 MiB capped at 8 MiB. The cap showed no
 * throughput difference beyond run-to-run noise in bench/pdp's worker-pool rows.
 */
const RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 8 };

const THREAD = new URL('./worker-pool-thread.ts', import.meta.url);

/**
 * A fixed pool of threads (runtime's ThreadPool); the event loop keeps the network work (HTTP,
 * gRPC, JSON) and the threads evaluate, so on a machine with a spare core the two overlap, and a
 * slow policy or the instantiation of a large revision never stalls the event loop. What callers
 * may rely on:
 * - Decisions go to the ready thread with the fewest in flight; each is one message round trip.
 * - `load` sends the revision to every thread and resolves when all of them serve it. Between the
 *   first and the last thread swapping, consecutive decisions may see either revision (each
 *   decision names the revision that made it).
 * - A thread that dies fails the decisions it had in flight and is replaced; the replacement is
 *   given the last revision of every bundle before it takes decisions.
 */
export class WorkerPoolEvaluator implements Evaluator {
  readonly kind = 'worker-pool' as const;
  private readonly pool: ThreadPool<Revision, Evaluation, JsonDecision>;
  private readonly served = new Map<string, string[]>();

  constructor(size = Math.min(4, availableParallelism())) {
    this.pool = new ThreadPool(THREAD, {
      size,
      reviveError: reviveEngineError,
      resourceLimits: RESOURCE_LIMITS,
      stateMessage: loadMessage,
    });
  }

  get size(): number {
    return this.pool.size;
  }

  /** The threads now serving (tests stop one to see it replaced). */
  threads(): import('node:worker_threads').Worker[] {
    return this.pool.threads();
  }

  async load(rev: Revision): Promise<boolean> {
    const answers = (await this.pool.configure(rev.bundle, forThreads(rev))) as LoadAnswer[];
    this.served.set(rev.bundle, answers[0]?.entrypoints ?? []);
    return answers.some((answer) => answer.loaded);
  }

  entrypoints(bundle: string): string[] {
    return [...(this.served.get(bundle) ?? [])];
  }

  async evaluate(entrypoint: string, inputJson: string | undefined): Promise<JsonDecision> {
    if (this.pool.ready === 0) {
      throw new EngineError('bundle_not_loaded', 'no evaluation thread is ready (they are being restarted)');
    }
    return this.pool.run({ entrypoint, input: inputJson });
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
