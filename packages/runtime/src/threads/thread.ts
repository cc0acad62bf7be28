// The thread side of a ThreadPool: answers configure and run messages with the module's handlers.
import { parentPort } from 'node:worker_threads';
import { type FromThread, type ToThread, toThreadError } from './protocol.ts';

export interface ThreadHandlers<State, Task, Result> {
  /** Replaces the thread's state; runs before any task that follows it, and again in a replacement thread. */
  configure(state: State): void | Promise<void>;
  run(task: Task): Result | Promise<Result>;
}

/** Serves a pool's messages on this thread; the module given to `ThreadPool` calls it once at load. */
export function serveThreadPool<State, Task, Result>(handlers: ThreadHandlers<State, Task, Result>): void {
  const port = parentPort;
  if (port === null) throw new Error('serveThreadPool must run in a worker thread');
  port.on('message', async (message: ToThread) => {
    let reply: FromThread;
    try {
      const result =
        message.type === 'configure'
          ? await handlers.configure(message.payload as State)
          : await handlers.run(message.payload as Task);
      reply = { id: message.id, ok: true, result };
    } catch (error) {
      reply = { id: message.id, ok: false, error: toThreadError(error) };
    }
    port.postMessage(reply);
  });
}
