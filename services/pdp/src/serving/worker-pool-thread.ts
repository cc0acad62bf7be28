// One thread of the worker pool: its own PolicyEngine, fed the same revisions as every other thread.
import { parentPort } from 'node:worker_threads';
import { isEngineError, PolicyEngine } from '@portcullis/engine';
import type { FromWorker, ToWorker, WorkerError } from './worker-protocol.ts';

if (!parentPort) throw new Error('worker-pool-thread must run in a worker thread');
const port = parentPort;
const engine = new PolicyEngine();

function errorOf(err: unknown): WorkerError {
  if (isEngineError(err)) return { engineCode: err.code, message: err.message, details: err.details };
  return { message: err instanceof Error ? err.message : String(err) };
}

port.on('message', (msg: ToWorker) => {
  if (msg.type === 'eval') {
    let reply: FromWorker;
    try {
      reply = { id: msg.id, ok: true, decision: engine.evaluateJson(msg.entrypoint, msg.input) };
    } catch (err) {
      reply = { id: msg.id, ok: false, error: errorOf(err) };
    }
    port.postMessage(reply);
    return;
  }
  engine.load(msg.revision).then(
    (loaded) => {
      const entrypoints = [...(engine.loaded()[msg.revision.bundle]?.entrypoints ?? [])];
      port.postMessage({ id: msg.id, ok: true, loaded, entrypoints } satisfies FromWorker);
    },
    (err: unknown) => port.postMessage({ id: msg.id, ok: false, error: errorOf(err) } satisfies FromWorker),
  );
});
