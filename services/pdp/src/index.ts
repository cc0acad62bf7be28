// @portcullis/pdp: the policy decision point — OPA's Data API and gRPC Decisions over hot-swapped WASM policies.
export { loadPdpConfig, PDP_CONFIG, type PdpConfig } from './config.ts';
export { Decider, type DecisionRequest, type DecisionResponse } from './decider.ts';
export { DECISIONS_PROTO, DECISIONS_SERVICE } from './decisions-service.ts';
export { buildPdp, type Pdp, type PdpDeps } from './pdp-app.ts';
export { type DocumentPlan, type ServedBundle, ServedDocuments } from './served-documents.ts';
export { type Evaluator, InThreadEvaluator } from './serving/evaluator.ts';
export { WorkerPoolEvaluator } from './serving/worker-pool.ts';
