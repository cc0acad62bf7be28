// Remote decisions over real gRPC: stand-in PDP servers (fault injection: errors, slowness, absence) behind the Decisions contract.
import { grpc, loadProtos, serviceClient } from '@portcullis/runtime';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DECISIONS_PROTO, DECISIONS_SERVICE, NoDecisionError, PdpEvaluator } from '../src/index.ts';

interface DecideRequest {
  path: string;
  input: string;
  decision_id: string;
}

type Behaviour =
  | { answer: { result: string; undefined?: boolean } }
  | { fail: grpc.status; code?: string }
  | { delayMs: number };

interface StandInPdp {
  address: string;
  requests: DecideRequest[];
  behaviour: Behaviour;
  close(): void;
}

async function startStandInPdp(name: string): Promise<StandInPdp> {
  const server = new grpc.Server();
  const pdp: StandInPdp = {
    address: '',
    requests: [],
    behaviour: { answer: { result: 'true' } },
    close: () => server.forceShutdown(),
  };
  const service = serviceClient(loadProtos([DECISIONS_PROTO]), DECISIONS_SERVICE).service;
  server.addService(service, {
    Decide: (call: grpc.ServerUnaryCall<DecideRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      pdp.requests.push(call.request);
      const b = pdp.behaviour;
      const ok = (result: string, undef = false) =>
        callback(null, {
          result,
          undefined: undef,
          bundle: name,
          revision: 7,
          digest: 'd'.repeat(64),
          decision_id: call.request.decision_id,
          eval_ns: '1234',
        });
      if ('answer' in b) ok(b.answer.result, b.answer.undefined);
      else if ('fail' in b) {
        const metadata = new grpc.Metadata();
        if (b.code) metadata.set('portcullis-error-code', b.code);
        callback({
          code: b.fail,
          details: `failing with ${grpc.status[b.fail]}`,
          metadata,
        } as grpc.ServiceError);
      } else setTimeout(() => ok('true'), b.delayMs).unref();
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  pdp.address = `127.0.0.1:${port}`;
  return pdp;
}

const ctx = (deadlineMs?: number) => ({
  decisionId: 'dec-1',
  signal: new AbortController().signal,
  ...(deadlineMs === undefined ? {} : { deadline: new Date(Date.now() + deadlineMs) }),
});

let a: StandInPdp;
let b: StandInPdp;
const made: PdpEvaluator[] = [];
function evaluator(targets: string[], timeoutMs = 500): PdpEvaluator {
  const e = new PdpEvaluator({ targets, timeoutMs });
  made.push(e);
  return e;
}

beforeAll(async () => {
  [a, b] = await Promise.all([startStandInPdp('a'), startStandInPdp('b')]);
});
afterEach(() => {
  a.behaviour = { answer: { result: 'true' } };
  b.behaviour = { answer: { result: 'true' } };
});
afterAll(async () => {
  for (const e of made) await e.stop();
  a.close();
  b.close();
});

describe('PdpEvaluator', () => {
  it('sends the path, the input as JSON and the decision id; reads the revision back', async () => {
    a.behaviour = { answer: { result: '{"allowed":true,"headers":{"x":"1"}}' } };
    const e = evaluator([a.address]);
    const got = await e.evaluate('envoy/authz/allow', { parsed_path: ['x'] } as never, ctx());
    expect(got).toEqual({
      result: { allowed: true, headers: { x: '1' } },
      bundle: 'a',
      revision: 7,
      digest: 'd'.repeat(64),
      evalNs: 1234,
    });
    expect(a.requests.at(-1)).toEqual({
      path: 'envoy/authz/allow',
      input: '{"parsed_path":["x"]}',
      decision_id: 'dec-1',
    });
  });

  it('an undefined result stays undefined', async () => {
    a.behaviour = { answer: { result: '', undefined: true } };
    expect((await evaluator([a.address]).evaluate('p', {} as never, ctx())).result).toBeUndefined();
  });

  it('rotates over the PDPs', async () => {
    const e = evaluator([a.address, b.address]);
    const before = [a.requests.length, b.requests.length];
    for (let i = 0; i < 10; i++) await e.evaluate('p', {} as never, ctx());
    expect([a.requests.length - before[0]!, b.requests.length - before[1]!]).toEqual([5, 5]);
  });

  it.each<[string, Behaviour, NoDecisionError['reason']]>([
    [
      'NOT_FOUND (no bundle serves the path)',
      { fail: grpc.status.NOT_FOUND, code: 'not_found' },
      'no_policy',
    ],
    [
      'INTERNAL (the policy failed)',
      { fail: grpc.status.INTERNAL, code: 'evaluation_error' },
      'evaluation_error',
    ],
    ['INVALID_ARGUMENT', { fail: grpc.status.INVALID_ARGUMENT, code: 'bad_request' }, 'evaluation_error'],
    ['a result that is not JSON', { answer: { result: '{nope' } }, 'evaluation_error'],
    ['slower than the budget', { delayMs: 2000 }, 'timeout'],
  ])('%s → NoDecisionError %s, without asking another PDP', async (_name, behaviour, reason) => {
    a.behaviour = behaviour;
    b.behaviour = behaviour;
    const e = evaluator([a.address, b.address], 150);
    const before = a.requests.length + b.requests.length;
    const error = await e.evaluate('p', {} as never, ctx()).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(NoDecisionError);
    expect((error as NoDecisionError).reason).toBe(reason);
    expect(a.requests.length + b.requests.length - before).toBe(1);
  });

  it.each<[string, grpc.status]>([
    ['UNAVAILABLE', grpc.status.UNAVAILABLE],
    ['RESOURCE_EXHAUSTED (over its concurrency limit)', grpc.status.RESOURCE_EXHAUSTED],
  ])('fails over from a PDP answering %s', async (_name, status) => {
    a.behaviour = { fail: status };
    const e = evaluator([a.address, b.address]);
    for (let i = 0; i < 4; i++) expect((await e.evaluate('p', {} as never, ctx())).bundle).toBe('b');
  });

  it('fails over from an address nobody listens on, and reports itself degraded', async () => {
    const dead = '127.0.0.1:1';
    const e = evaluator([dead, a.address]);
    await e.start();
    for (let i = 0; i < 4; i++) expect((await e.evaluate('p', {} as never, ctx())).bundle).toBe('a');
    await expect.poll(() => e.status().state).toBe('WARN');
  });

  it('every PDP unreachable → unavailable, and not ready', async () => {
    const e = evaluator(['127.0.0.1:1', '127.0.0.1:2']);
    await e.start();
    const error = (await e.evaluate('p', {} as never, ctx()).catch((err: unknown) => err)) as NoDecisionError;
    expect(error.reason).toBe('unavailable');
    expect(error.message).toContain('127.0.0.1:1');
    await expect.poll(() => e.status().state).toBe('NOT_READY');
  });

  it('the caller’s deadline, when sooner, bounds the call', async () => {
    a.behaviour = { delayMs: 2000 };
    const started = performance.now();
    const error = (await evaluator([a.address], 5000)
      .evaluate('p', {} as never, ctx(100))
      .catch((err: unknown) => err)) as NoDecisionError;
    expect(error.reason).toBe('timeout');
    expect(performance.now() - started).toBeLessThan(1500);
  });

  it('an aborted check cancels its call', async () => {
    a.behaviour = { delayMs: 2000 };
    const controller = new AbortController();
    const pending = evaluator([a.address], 5000)
      .evaluate('p', {} as never, { decisionId: 'x', signal: controller.signal })
      .catch((err: unknown) => err);
    await expect.poll(() => a.requests.at(-1)?.decision_id).toBe('x');
    const started = performance.now();
    controller.abort();
    expect(((await pending) as NoDecisionError).reason).toBe('timeout');
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('is ready once connected', async () => {
    const e = evaluator([a.address]);
    await e.start();
    await expect.poll(() => e.status().state).toBe('OK');
  });

  it.each([[[]], [['x:1']]])('refuses bad options %j', (targets) => {
    expect(() => new PdpEvaluator({ targets, timeoutMs: targets.length === 0 ? 100 : 0 })).toThrow(TypeError);
  });
});
