import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PortcullisError } from '../src/errors.ts';
import { GrpcServer, grpc, loadProtos, serverStream, serviceClient, unary } from '../src/grpc.ts';
import { createLogger } from '../src/logger.ts';
import { createMetrics } from '../src/metrics.ts';

const metrics = createMetrics('grpc-test');
const server = new GrpcServer({ logger: createLogger('grpc-test', 'silent'), metrics });
const pap = loadProtos(['portcullis/pap/v1/distribution.proto']);
const Distribution = serviceClient(pap, 'portcullis.pap.v1.PolicyDistribution');
let client: grpc.Client;
let release: () => void = () => {};

beforeAll(async () => {
  server.addService(Distribution.service, {
    GetActive: async (req: { bundle: string }, call: grpc.ServerUnaryCall<unknown, unknown>) => {
      if (req.bundle === 'missing') throw new PortcullisError('not_found', 'bundle missing does not exist');
      if (req.bundle === 'crash') throw new Error('database password is hunter2');
      if (req.bundle === 'slow') await new Promise<void>((resolve) => (release = resolve));
      const traceparent = call.metadata.get('x-probe')[0];
      return {
        active: [{ bundle: req.bundle, revision: 3, digest: String(traceparent ?? ''), activation_seq: '7' }],
      };
    },
    FetchBundle: async (req: { digest: string }, call: grpc.ServerWritableStream<unknown, unknown>) => {
      if (req.digest === 'bad') throw new PortcullisError('not_found', 'no such digest');
      for (let i = 0; i < 3; i++) call.write({ data: Buffer.from([i]), total_size: i === 0 ? '3' : '0' });
    },
  });
  const port = await server.bind('127.0.0.1:0');
  client = new Distribution(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client.close();
  await server.shutdown(1000);
});

describe('GrpcServer and client helpers', () => {
  it('answers a unary call and passes metadata', async () => {
    const metadata = new grpc.Metadata();
    metadata.set('x-probe', 'seen');
    const res = await unary<object, { active: { bundle: string; revision: number; digest: string }[] }>(
      client,
      'GetActive',
      { bundle: 'authz' },
      { metadata },
    );
    expect(res.active[0]).toMatchObject({ bundle: 'authz', revision: 3, digest: 'seen' });
  });

  it.each([
    ['missing', 'not_found', 'bundle missing does not exist'],
    ['crash', 'internal', 'internal error'],
  ])('maps a thrown error for %s to code %s without leaking internals', async (bundle, code, message) => {
    const err = await unary(client, 'GetActive', { bundle }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortcullisError);
    expect((err as PortcullisError).code).toBe(code);
    expect((err as PortcullisError).message).toBe(message);
  });

  it('enforces the client deadline', async () => {
    const err = await unary(client, 'GetActive', { bundle: 'slow' }, { deadlineMs: 50 }).catch(
      (e: unknown) => e,
    );
    release();
    expect((err as PortcullisError).code).toBe('timeout');
  });

  it('streams server responses and maps stream errors', async () => {
    const chunks: number[] = [];
    for await (const chunk of serverStream(client, 'FetchBundle', { bundle: 'b', digest: 'd' })) {
      chunks.push(...(chunk as { data: Buffer }).data);
    }
    expect(chunks).toEqual([0, 1, 2]);
    const failing = serverStream(client, 'FetchBundle', { bundle: 'b', digest: 'bad' });
    const err = await (async () => {
      for await (const _ of failing) {
        // drain
      }
    })().catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
  });

  it('counts calls by method and status', async () => {
    const text = await metrics.registry.metrics();
    expect(text).toMatch(
      /portcullis_grpc_requests_total\{method="\/portcullis.pap.v1.PolicyDistribution\/GetActive",code="NOT_FOUND",service="grpc-test"\} 1/,
    );
  });
});
