// gRPC portcullis.pdp.v1.Decisions (Decide, DecideBatch): a thin adapter over the Decider.
import { isEngineError, normalizeEntrypoint } from '@portcullis/engine';
import { type GrpcServer, loadProtos, PortcullisError, serviceClient } from '@portcullis/runtime';
import type { ConcurrencyLimit } from './concurrency-limit.ts';
import type { Decider, DecisionResponse } from './decider.ts';
import type { PdpMetrics } from './pdp-metrics.ts';

export const DECISIONS_PROTO = 'portcullis/pdp/v1/decisions.proto';
export const DECISIONS_SERVICE = 'portcullis.pdp.v1.Decisions';

interface DecideRequest {
  path: string;
  input: string;
  decision_id: string;
}

interface DecideResponse {
  result: string;
  undefined: boolean;
  bundle: string;
  revision: number;
  digest: string;
  decision_id: string;
  eval_ns: string;
}

type BatchItem = { response: DecideResponse } | { error: { code: string; message: string } };

export interface DecisionsServiceOptions {
  decider: Decider;
  limiter: ConcurrencyLimit;
  metrics: PdpMetrics;
  maxInputBytes: number;
  maxBatch: number;
}

function toResponse(res: DecisionResponse): DecideResponse {
  return {
    result: res.resultJson ?? '',
    undefined: res.resultJson === undefined,
    bundle: res.bundle,
    revision: res.revision,
    digest: res.digest,
    decision_id: res.decisionId,
    eval_ns: String(res.evalNs),
  };
}

/** EngineErrors as the stable Portcullis codes the gRPC status is derived from. */
function toPortcullis(err: unknown): PortcullisError {
  if (err instanceof PortcullisError) return err;
  if (isEngineError(err)) {
    if (err.code === 'invalid_input' || err.code === 'invalid_path') {
      return new PortcullisError('bad_request', err.message, { cause: err });
    }
    return new PortcullisError('evaluation_error', err.message, {
      cause: err,
      details: [{ engine_code: err.code }],
    });
  }
  return new PortcullisError('internal', 'internal error', { cause: err });
}

export function addDecisionsService(server: GrpcServer, opts: DecisionsServiceOptions): void {
  const { decider, limiter, metrics, maxInputBytes, maxBatch } = opts;
  const service = serviceClient(loadProtos([DECISIONS_PROTO]), DECISIONS_SERVICE).service;

  const reject = (reason: string, err: PortcullisError): never => {
    metrics.rejected.inc({ reason });
    throw err;
  };

  const decideOne = async (req: DecideRequest): Promise<DecideResponse> => {
    if (!req.path) reject('bad_input', new PortcullisError('bad_request', 'path is required'));
    let segments: string[];
    try {
      segments = normalizeEntrypoint(req.path).split('/');
    } catch (err) {
      return reject('bad_input', toPortcullis(err));
    }
    const size = Buffer.byteLength(req.input ?? '');
    if (size > maxInputBytes) {
      reject(
        'input_too_large',
        new PortcullisError(
          'bad_request',
          `input is ${size} bytes, over the limit of ${maxInputBytes} (PDP_MAX_INPUT_BYTES)`,
        ),
      );
    }
    let input: unknown;
    if (req.input) {
      try {
        input = JSON.parse(req.input);
      } catch (err) {
        reject(
          'bad_input',
          new PortcullisError('bad_request', `input is not valid JSON: ${(err as Error).message}`),
        );
      }
    }
    let res: DecisionResponse;
    try {
      res = await decider.decide({
        segments,
        ...(req.input ? { input, inputJson: req.input } : {}),
        ...(req.decision_id ? { decisionId: req.decision_id } : {}),
      });
    } catch (err) {
      throw toPortcullis(err);
    }
    if (res.served === 'none') {
      throw new PortcullisError('not_found', `no loaded bundle serves ${segments.join('/')}`, {
        details: [{ path: segments.join('/') }],
      });
    }
    return toResponse(res);
  };

  const admitted = async <T>(work: () => Promise<T>): Promise<T> => {
    if (!limiter.tryAcquire()) {
      reject(
        'too_many_requests',
        new PortcullisError(
          'too_many_requests',
          `more than ${limiter.max} decisions in progress (PDP_MAX_CONCURRENCY); retry later`,
        ),
      );
    }
    try {
      return await work();
    } finally {
      limiter.release();
    }
  };

  server.addService(service, {
    Decide: (req: DecideRequest) => admitted(() => decideOne(req)),
    /** Items are independent: one failing item is reported in its slot, the others still decided. */
    DecideBatch: (req: { requests: DecideRequest[] }) =>
      admitted(async () => {
        const requests = req.requests ?? [];
        if (requests.length > maxBatch) {
          reject(
            'bad_input',
            new PortcullisError(
              'bad_request',
              `${requests.length} requests in one batch, over the limit of ${maxBatch} (PDP_MAX_BATCH)`,
            ),
          );
        }
        const items: BatchItem[] = [];
        for (const r of requests) {
          try {
            items.push({ response: await decideOne(r) });
          } catch (err) {
            const pe = toPortcullis(err);
            items.push({ error: { code: pe.code, message: pe.message } });
          }
        }
        return { items };
      }),
  });
}
