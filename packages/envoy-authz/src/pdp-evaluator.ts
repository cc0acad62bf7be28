// Remote decisions: `portcullis.pdp.v1.Decisions/Decide` on one or more PDPs, balanced client-side, with deadlines and failover.
import {
  type Component,
  type ComponentStatus,
  context,
  fromGrpcError,
  grpc,
  loadProtos,
  propagation,
  serviceClient,
} from '@portcullis/runtime';
import { NoDecisionError, type PolicyEvaluation, type PolicyEvaluator } from './policy-decide.ts';

export const DECISIONS_PROTO = 'portcullis/pdp/v1/decisions.proto';
export const DECISIONS_SERVICE = 'portcullis.pdp.v1.Decisions';

export interface PdpEvaluatorOptions {
  /**
   * gRPC targets of the PDPs: `host:port`, or any grpc-js target (`dns:///pdp:9181`,
   * `ipv4:10.0.0.1:9181`, `unix:/run/pdp.sock`). Calls rotate over them; a `dns:` name resolving
   * to several addresses is balanced within by grpc-js's `round_robin`.
   */
  targets: readonly string[];
  /** Budget of one decision, failover included (capped by the caller's own deadline). */
  timeoutMs: number;
  credentials?: grpc.ChannelCredentials;
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

type DecideMethod = (
  request: { path: string; input: string; decision_id: string },
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: DecideResponse) => void,
) => grpc.ClientUnaryCall;

/**
 * grpc-js backs off reconnecting up to 120 s by default: a PDP that restarts would then be ignored
 * for minutes. `round_robin` spreads calls over every address a target resolves to (the default,
 * `pick_first`, would pin one).
 */
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.min_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2000,
  'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
  'grpc.max_send_message_length': 16 * 1024 * 1024,
};

/**
 * Codes after which the same call may go to another PDP, because the one tried did not evaluate
 * it: unreachable, or over its concurrency limit.
 */
const FAILOVER_CODES: ReadonlySet<grpc.status> = new Set([
  grpc.status.UNAVAILABLE,
  grpc.status.RESOURCE_EXHAUSTED,
]);

/**
 * What callers may rely on:
 * - every call has a deadline: `timeoutMs` from its start, or the caller's deadline if sooner;
 *   when it passes the call is cancelled and `evaluate` rejects with NoDecisionError `timeout`;
 * - a PDP that cannot be reached (UNAVAILABLE: down, refusing, not yet connected) or is over its
 *   concurrency limit (RESOURCE_EXHAUSTED) is skipped for the next one while the budget lasts;
 *   calls rotate over targets in order, those in TRANSIENT_FAILURE last; only when every target
 *   failed does `evaluate` reject (`unavailable`);
 * - a PDP's own answer is final, never retried elsewhere: a path it does not serve (NOT_FOUND) is
 *   `no_policy`, any other error `evaluation_error`;
 * - the decision id is sent along, so the PDP's decision log carries the id Envoy logs.
 */
export class PdpEvaluator implements PolicyEvaluator, Component {
  readonly name = 'pdp-client';
  private readonly clients: { target: string; client: grpc.Client; decide: DecideMethod }[];
  private readonly timeoutMs: number;
  private next = 0;

  constructor(options: PdpEvaluatorOptions) {
    if (options.targets.length === 0) throw new TypeError('PdpEvaluator needs at least one target');
    if (!(options.timeoutMs > 0)) throw new TypeError(`timeoutMs ${options.timeoutMs} must be positive`);
    const Client = serviceClient(loadProtos([DECISIONS_PROTO]), DECISIONS_SERVICE);
    const credentials = options.credentials ?? grpc.credentials.createInsecure();
    this.clients = options.targets.map((target) => {
      const client = new Client(target, credentials, CHANNEL_OPTIONS);
      const decide = (client as unknown as Record<string, DecideMethod>)['Decide']!;
      return { target, client, decide };
    });
    this.timeoutMs = options.timeoutMs;
  }

  /** Starts connecting every channel, so the first decisions do not pay for it. */
  async start(): Promise<void> {
    for (const { client } of this.clients) client.getChannel().getConnectivityState(true);
  }

  async stop(): Promise<void> {
    for (const { client } of this.clients) client.close();
  }

  /** OK when every PDP is connected (or idle), WARN when only some are, NOT_READY when none is. */
  status(): ComponentStatus {
    const down: string[] = [];
    for (const { target, client } of this.clients) {
      // `true` asks an idle or failed channel to (re)connect: a readiness probe is a good moment.
      const state = client.getChannel().getConnectivityState(true);
      if (state !== grpc.connectivityState.READY && state !== grpc.connectivityState.IDLE) {
        down.push(`${target} ${grpc.connectivityState[state]}`);
      }
    }
    if (down.length === this.clients.length) {
      return { state: 'NOT_READY', message: `no PDP reachable: ${down.join(', ')}` };
    }
    if (down.length > 0) return { state: 'WARN', message: `PDPs not connected: ${down.join(', ')}` };
    return { state: 'OK', message: `${this.clients.length} PDP target(s) connected` };
  }

  async evaluate(
    path: string,
    input: unknown,
    ctx: { decisionId: string; deadline?: Date; signal: AbortSignal },
  ): Promise<PolicyEvaluation> {
    const ownDeadline = Date.now() + this.timeoutMs;
    const deadline = Math.min(ownDeadline, ctx.deadline?.getTime() ?? ownDeadline);
    const request = { path, input: JSON.stringify(input), decision_id: ctx.decisionId };
    const metadata = new grpc.Metadata();
    const carrier: Record<string, string> = {};
    propagation.inject(context.active(), carrier);
    for (const [k, v] of Object.entries(carrier)) metadata.set(k, v);

    const failures: string[] = [];
    for (const entry of this.rotation()) {
      if (ctx.signal.aborted) throw new NoDecisionError('timeout', 'the check was cancelled');
      if (Date.now() >= deadline) break;
      try {
        return parseResponse(await this.call(entry, request, metadata, deadline, ctx.signal));
      } catch (err) {
        if (err instanceof NoDecisionError) throw err;
        const e = err as grpc.ServiceError;
        if (e.code === grpc.status.DEADLINE_EXCEEDED || e.code === grpc.status.CANCELLED) {
          throw new NoDecisionError('timeout', `PDP ${entry.target} did not answer in time`, { cause: err });
        }
        if (!FAILOVER_CODES.has(e.code)) {
          const pe = fromGrpcError(e);
          const reason = pe.code === 'not_found' ? 'no_policy' : 'evaluation_error';
          throw new NoDecisionError(reason, `PDP ${entry.target}: ${pe.message}`, { cause: err });
        }
        failures.push(`${entry.target}: ${e.details || e.message}`);
      }
    }
    if (failures.length === 0) throw new NoDecisionError('timeout', 'no time left to ask a PDP');
    throw new NoDecisionError('unavailable', `no PDP could be reached (${failures.join('; ')})`);
  }

  /** Every client once, starting with the next in turn; those in TRANSIENT_FAILURE go last. */
  private rotation(): PdpEvaluator['clients'] {
    const n = this.clients.length;
    const start = this.next;
    this.next = (this.next + 1) % n;
    if (n === 1) return this.clients;
    const healthy: PdpEvaluator['clients'] = [];
    const failing: PdpEvaluator['clients'] = [];
    for (let i = 0; i < n; i++) {
      const entry = this.clients[(start + i) % n]!;
      const state = entry.client.getChannel().getConnectivityState(false);
      (state === grpc.connectivityState.TRANSIENT_FAILURE ? failing : healthy).push(entry);
    }
    return healthy.concat(failing);
  }

  private call(
    entry: PdpEvaluator['clients'][number],
    request: { path: string; input: string; decision_id: string },
    metadata: grpc.Metadata,
    deadline: number,
    signal: AbortSignal,
  ): Promise<DecideResponse> {
    return new Promise((resolve, reject) => {
      const call = entry.decide.call(entry.client, request, metadata, { deadline }, (err, response) => {
        signal.removeEventListener('abort', cancel);
        if (err) reject(err);
        else resolve(response!);
      });
      const cancel = (): void => call.cancel();
      signal.addEventListener('abort', cancel, { once: true });
    });
  }
}

function parseResponse(response: DecideResponse): PolicyEvaluation {
  let result: unknown;
  if (!response.undefined && response.result !== '') {
    try {
      result = JSON.parse(response.result);
    } catch (err) {
      throw new NoDecisionError('evaluation_error', 'the PDP answered a result that is not JSON', {
        cause: err,
      });
    }
  }
  return {
    result,
    bundle: response.bundle,
    revision: response.revision,
    digest: response.digest,
    evalNs: Number(response.eval_ns),
  };
}
