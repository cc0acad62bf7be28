// The thread side of a ThreadPool: answers configure and run messages with the module's handlers.
import { parentPort } from 'node:worker_threads';
import { type FromThread, type ToThread, toThreadError } from './protocol.ts';

export interface ThreadHandlers<State, Task, Result> {
  /**
   * Sets the state under `key`; runs before any task sent after it, and again in a replacement thread.
   * What it returns is the thread's answer to `ThreadPool.configure`.
   */
  configure(state: State, key: string): unknown;
  run(task: Task): Result | Promise<Result>;
}

/** Serves a pool's messages on this thread; the module given to `ThreadPool` calls it once at load. */
export function serveThreadPool<State, Task, Result>(handlers: ThreadHandlers<State, Task, Result>): void {
  const port = parentPort;
  if (port === null) throw new Error('serveThreadPool must run in a worker thread');
  const configure = ({ key, state }: { key: string; state: State }) => handlers.configure(state, key);
  port.on('message', async (message: ToThread) => {
    let reply: FromThread;
    try {
      const result =
        message.type === 'configure'
          ? await configure(message.payload as { key: string; state: State })
          : await handlers.run(message.payload as Task);
      reply = { id: message.id, ok: true, result };
    } catch (error) {
      reply = { id: message.id, ok: false, error: toThreadError(error) };
    }
    port.postMessage(reply);
  });
}
