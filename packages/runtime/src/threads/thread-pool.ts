// A fixed pool of worker threads for CPU-bound tasks, with state every thread holds.
import { type ResourceLimits, type TransferListItem, Worker } from 'node:worker_threads';
import type { FromThread, ThreadError, ToThread } from './protocol.ts';

export type { ThreadError } from './protocol.ts';

export interface ThreadPoolOptions<State = unknown> {
  /** Threads to run (at least one). */
  readonly size: number;
  /** Rebuilds an error a task threw in a thread; by default a plain Error with its name and message. */
  readonly reviveError?: (error: ThreadError) => Error;
  /** Heap limits of each thread (e.g. a smaller young generation for threads that hold little). */
  readonly resourceLimits?: ResourceLimits;
  /**
   * What a thread is sent for a state, once per thread (replacements included): by default the state,
   * cloned. Return fresh buffers in `transfer` to hand them over instead of cloning them.
   */
  readonly stateMessage?: (state: State) => {
    readonly message: unknown;
    readonly transfer: readonly TransferListItem[];
  };
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
  /** False until a replacement thread holds the current state; tasks go elsewhere meanwhile. */
  ready: boolean;
}

const BOOTSTRAP = new URL('./bootstrap.mjs', import.meta.url);

function defaultRevive(error: ThreadError): Error {
  const revived = new Error(error.message);
  revived.name = error.name;
  return revived;
}

/**
 * Runs tasks on `module` (a file calling `serveThreadPool`) in `size` threads, so CPU-bound work
 * leaves the event loop free for the network. What callers may rely on:
 * - A task goes to the ready thread with the fewest tasks in flight; each is one message round trip.
 * - `configure(key, state)` resolves, with each thread's answer, when every thread holds `state` under
 *   `key`; a task sent after the call (not only after it resolves) sees it, since a thread handles
 *   its messages in order. It rejects if any thread refused the state; threads that took it keep it.
 * - A replacement thread is given, before it takes tasks, the last state of every key that all
 *   threads accepted, in the order the keys were last configured; if it refuses one, it is replaced.
 * - A thread that dies fails the tasks it had in flight and is replaced.
 */
export class ThreadPool<State, Task, Result> {
  private readonly slots: Slot[] = [];
  private readonly reviveError: (error: ThreadError) => Error;
  private readonly resourceLimits: ResourceLimits | undefined;
  private readonly stateMessage: NonNullable<ThreadPoolOptions<State>['stateMessage']>;
  private nextId = 1;
  /** Per key, the state of the latest configure call every thread accepted, in the order keys were set. */
  private readonly states = new Map<string, { call: number; state: State }>();
  private calls = 0;
  private closed = false;

  constructor(
    private readonly module: URL,
    options: ThreadPoolOptions<State>,
  ) {
    this.reviveError = options.reviveError ?? defaultRevive;
    this.resourceLimits = options.resourceLimits;
    this.stateMessage = options.stateMessage ?? ((state) => ({ message: state, transfer: [] }));
    for (let i = 0; i < Math.max(1, options.size); i++) this.slots.push(this.spawn());
  }

  get size(): number {
    return this.slots.length;
  }

  /** Threads taking tasks now (a replacement is not until it holds the state). */
  get ready(): number {
    return this.slots.filter((slot) => slot.ready).length;
  }

  /** The threads now running (tests stop one to see it replaced). */
  threads(): Worker[] {
    return this.slots.map((slot) => slot.worker);
  }

  async configure(key: string, state: State): Promise<unknown[]> {
    const call = ++this.calls;
    const answers = await Promise.all(this.slots.map((slot) => this.sendState(slot, key, state)));
    // Calls for one key may settle out of order; the state of the latest accepted call wins.
    if ((this.states.get(key)?.call ?? 0) < call) {
      this.states.delete(key);
      this.states.set(key, { call, state });
    }
    return answers;
  }

  run(task: Task): Promise<Result> {
    let slot: Slot | undefined;
    for (const s of this.slots) if (s.ready && (!slot || s.pending.size < slot.pending.size)) slot = s;
    if (slot === undefined)
      return Promise.reject(new Error('no pool thread is ready (they are being restarted)'));
    return this.send(slot, 'run', task) as Promise<Result>;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
  }

  private spawn(): Slot {
    const worker = new Worker(BOOTSTRAP, {
      workerData: { module: this.module.href },
      ...(this.resourceLimits === undefined ? {} : { resourceLimits: this.resourceLimits }),
    });
    const slot: Slot = { worker, pending: new Map(), ready: true };
    worker.on('message', (message: FromThread) => this.settle(slot, message));
    worker.on('error', (error) => this.failAll(slot, error));
    worker.on('exit', (code) => {
      this.failAll(slot, new Error(`pool thread exited with code ${code}`));
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
      for (const [key, { state }] of this.states) await this.sendState(slot, key, state);
      slot.ready = true;
    } catch {
      // A thread without the state must not take tasks: end it, and its exit handler replaces it.
      void slot.worker.terminate();
    }
  }

  private sendState(slot: Slot, key: string, state: State): Promise<unknown> {
    const { message, transfer } = this.stateMessage(state);
    return this.send(slot, 'configure', { key, state: message }, transfer);
  }

  private send(
    slot: Slot,
    type: ToThread['type'],
    payload: unknown,
    transfer: readonly TransferListItem[] = [],
  ): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error('the thread pool is closed'));
    const message: ToThread = { type, id: this.nextId++, payload };
    return new Promise((resolve, reject) => {
      slot.pending.set(message.id, { resolve, reject });
      slot.worker.postMessage(message, transfer as TransferListItem[]);
    });
  }

  private settle(slot: Slot, message: FromThread): void {
    const pending = slot.pending.get(message.id);
    if (pending === undefined) return;
    slot.pending.delete(message.id);
    if (message.ok) pending.resolve(message.result);
    else pending.reject(this.reviveError(message.error));
  }

  private failAll(slot: Slot, error: Error): void {
    for (const pending of slot.pending.values()) pending.reject(error);
    slot.pending.clear();
  }
}
