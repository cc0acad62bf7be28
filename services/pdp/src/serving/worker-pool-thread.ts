// One thread of the worker pool: its own PolicyEngine, fed the same revisions as every other thread.
import { type JsonDecision, PolicyEngine, type Revision } from '@portcullis/engine';
import { serveThreadPool } from '@portcullis/runtime/thread';
import type { Evaluation, LoadAnswer } from './worker-protocol.ts';

const engine = new PolicyEngine();

serveThreadPool<Revision, Evaluation, JsonDecision>({
  async configure(revision): Promise<LoadAnswer> {
    const loaded = await engine.load(revision);
    return { loaded, entrypoints: [...(engine.loaded()[revision.bundle]?.entrypoints ?? [])] };
  },
  run({ entrypoint, input }) {
    return engine.evaluateJson(entrypoint, input);
  },
});
