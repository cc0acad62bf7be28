// Evaluation in a pool of worker threads, each holding its own engine kept current with the same revisions.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { EngineError, type JsonDecision, type Revision } from '@portcullis/engine';
import type { Evaluator } from './evaluator.ts';
import type { FromWorker, ToWorker, WorkerError } from './worker-protocol.ts';

interface Pending {
  resolve(value: FromWorker & { ok: true }): void;
  reject(err: Error): void;
}

interface Slot {
  worker: Worker;
  inFlight: number;
  pending: Map<number, Pending>;
  /** False while a replacement thread is being given the revisions; decisions go elsewhere meanwhile. */
  ready: boolean;
}

function toError(e: WorkerError): Error {
  if (e.engineCode) return new EngineError(e.engineCode, e.message, { details: e.details });
  return new Error(e.message);
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
function loadMessage(rev: Revision): { msg: ToWorker; transfer: ArrayBuffer[] } {
  const text = rev.dataJson!;
  const dataLength = typeof text === 'string' ? Buffer.byteLength(text) : text.byteLength;
  const bytes = new ArrayBuffer(rev.wasm.byteLength + dataLength);
  const wasm = new Uint8Array(bytes, 0, rev.wasm.byteLength);
  wasm.set(rev.wasm);
  const dataJson = new Uint8Array(bytes, rev.wasm.byteLength, dataLength);
  if (typeof text === 'string') Buffer.from(bytes, rev.wasm.byteLength, dataLength).write(text);
  else dataJson.set(text);
  return { msg: { type: 'load', id: 0, revision: { ...rev, wasm, dataJson } }, transfer: [bytes] };
}

/**
 * A thread's heap holds its engine and the messages in flight, little else; left to itself V8 doubles each
 * thread's young generation (16 → 32 MiB) under the allocations of swaps and load, and keeps it: a thread's
 * heap went from 36 to 57 MiB over 100 RBAC swaps, against 28 to 33 MiB capped at 8 MiB. The cap showed no
 * throughput difference beyond run-to-run noise in bench/pdp's worker-pool rows.
 */
const THREAD_OPTIONS = { resourceLimits: { maxYoungGenerationSizeMb: 8 } };

/** A thread does not inherit its parent's loader hooks: the bootstrap registers tsx in the thread itself. */
const THREAD_URL = new URL('./worker-pool-thread.mjs', import.meta.url);

/**
 * A fixed pool of threads; the event loop keeps the network work (HTTP, gRPC, JSON) and the
 * threads evaluate, so on a machine with a spare core the two overlap, and a slow policy or the
 * instantiation of a large revision never stalls the event loop. What callers may rely on:
 * - Decisions go to the ready thread with the fewest in flight; each is one message round trip.
 * - `load` sends the revision to every thread and resolves when all of them serve it. Between the
 *   first and the last thread swapping, consecutive decisions may see either revision (each
 *   decision names the revision that made it).
 * - A thread that dies fails the decisions it had in flight and is replaced; the replacement is
 *   given the last revision of every bundle before it takes decisions.
 */
export class WorkerPoolEvaluator implements Evaluator {
  readonly kind = 'worker-pool' as const;
  private readonly slots: Slot[] = [];
  private nextId = 1;
  /** The last revision loaded per bundle, in load order: what a replacement thread must serve. */
  private readonly revisions = new Map<string, Revision>();
  private readonly served = new Map<string, string[]>();
  private closed = false;

  constructor(size = Math.min(4, availableParallelism())) {
    for (let i = 0; i < Math.max(1, size); i++) this.slots.push(this.spawn());
  }

  get size(): number {
    return this.slots.length;
  }

  /** The threads now serving (tests stop one to see it replaced). */
  threads(): Worker[] {
    return this.slots.map((s) => s.worker);
  }

  async load(rev: Revision): Promise<boolean> {
    const sent = forThreads(rev);
    const results = await Promise.allSettled(
      this.slots.map((slot) => {
        const { msg, transfer } = loadMessage(sent);
        return this.send(slot, msg, transfer);
      }),
    );
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    this.revisions.delete(rev.bundle);
    this.revisions.set(rev.bundle, sent);
    const first = results[0];
    if (first?.status === 'fulfilled') this.served.set(rev.bundle, first.value.entrypoints ?? []);
    return results.some((r) => r.status === 'fulfilled' && r.value.loaded === true);
  }

  entrypoints(bundle: string): string[] {
    return [...(this.served.get(bundle) ?? [])];
  }

  async evaluate(entrypoint: string, inputJson: string | undefined): Promise<JsonDecision> {
    let slot: Slot | undefined;
    for (const s of this.slots) if (s.ready && (!slot || s.inFlight < slot.inFlight)) slot = s;
    if (!slot)
      throw new EngineError('bundle_not_loaded', 'no evaluation thread is ready (they are being restarted)');
    const reply = await this.send(slot, { type: 'eval', id: 0, entrypoint, input: inputJson });
    return reply.decision!;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private spawn(): Slot {
    const slot: Slot = {
      worker: new Worker(THREAD_URL, THREAD_OPTIONS),
      inFlight: 0,
      pending: new Map(),
      ready: true,
    };
    slot.worker.on('message', (msg: FromWorker) => this.settle(slot, msg));
    slot.worker.on('error', (err) => this.failAll(slot, err));
    slot.worker.on('exit', (code) => {
      this.failAll(slot, new Error(`evaluation thread exited with code ${code}`));
      if (!this.closed) void this.replace(slot);
    });
    return slot;
  }

  private async replace(dead: Slot): Promise<void> {
    const index = this.slots.indexOf(dead);
    if (index < 0) return;
    const slot = this.spawn();
    slot.ready = false;
    this.slots[index] = slot;
    try {
      for (const rev of this.revisions.values()) {
        const { msg, transfer } = loadMessage(rev);
        await this.send(slot, msg, transfer);
      }
      slot.ready = true;
    } catch {
      // The replacement failed too; its own exit handler replaces it again.
    }
  }

  private send(slot: Slot, msg: ToWorker, transfer: ArrayBuffer[] = []): Promise<FromWorker & { ok: true }> {
    if (this.closed) return Promise.reject(new Error('worker pool is closed'));
    const id = this.nextId++;
    msg.id = id;
    slot.inFlight++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage(msg, transfer);
    });
  }

  private settle(slot: Slot, msg: FromWorker): void {
    const p = slot.pending.get(msg.id);
    if (!p) return;
    slot.pending.delete(msg.id);
    slot.inFlight--;
    if (msg.ok) p.resolve(msg);
    else p.reject(toError(msg.error));
  }

  private failAll(slot: Slot, err: Error): void {
    for (const p of slot.pending.values()) p.reject(err);
    slot.pending.clear();
    slot.inFlight = 0;
  }
}
