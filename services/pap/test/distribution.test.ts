// gRPC PolicyDistribution with a real grpc-js client: GetActive, and FetchBundle's bytes hash to the digest.
import { createHash, randomBytes } from 'node:crypto';
import { grpc, loadProtos, PortcullisError, serverStream, serviceClient, unary } from '@portcullis/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHUNK_BYTES, DISTRIBUTION_PROTO, DISTRIBUTION_SERVICE } from '../src/distribution-service.ts';
import { activate, json, postRevision, SAMPLE, startTestPap, type TestPap } from './pap-fixture.ts';

let t: TestPap;
let client: grpc.Client;
let digest: string;
let bigDigest: string;

interface Active {
  bundle: string;
  revision: number;
  digest: string;
  activation_seq: string;
  activated_at: string;
  entrypoints: string[];
}

beforeAll(async () => {
  t = await startTestPap();
  const small = await postRevision(t.pap, 'dist', SAMPLE);
  digest = json<{ digest: string }>(small).digest;
  expect((await activate(t.pap, 'dist', 1)).statusCode).toBe(200);
  // Incompressible data makes an archive of several chunks.
  const big = await postRevision(t.pap, 'big', {
    ...SAMPLE,
    data: { admins: [], blob: randomBytes(150_000).toString('base64') },
  });
  expect(big.statusCode, big.body).toBe(201);
  bigDigest = json<{ digest: string }>(big).digest;
  await postRevision(t.pap, 'inactive', SAMPLE);
  const { grpcPort } = await t.pap.listen();
  const Client = serviceClient(loadProtos([DISTRIBUTION_PROTO]), DISTRIBUTION_SERVICE);
  client = new Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
});
afterAll(async () => {
  client?.close();
  await t?.close();
});

async function fetchBundle(
  bundle: string,
  d: string,
): Promise<{ data: Buffer; sizes: string[]; chunks: number }> {
  const stream = serverStream(client, 'FetchBundle', { bundle, digest: d });
  const parts: Buffer[] = [];
  const sizes: string[] = [];
  for await (const chunk of stream as AsyncIterable<{ data: Buffer; total_size: string }>) {
    parts.push(chunk.data);
    sizes.push(chunk.total_size);
  }
  return { data: Buffer.concat(parts), sizes, chunks: parts.length };
}

describe('PolicyDistribution', () => {
  it('GetActive lists every active bundle, or one', async () => {
    const all = await unary<object, { active: Active[] }>(client, 'GetActive', { bundle: '' });
    expect(all.active).toEqual([
      {
        bundle: 'dist',
        revision: 1,
        digest,
        activation_seq: expect.stringMatching(/^\d+$/),
        activated_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        entrypoints: SAMPLE.entrypoints,
      },
    ]);
    const one = await unary<object, { active: Active[] }>(client, 'GetActive', { bundle: 'dist' });
    expect(one.active).toEqual(all.active);
    const none = await unary<object, { active: Active[] }>(client, 'GetActive', { bundle: 'inactive' });
    expect(none.active).toEqual([]);
  });

  it.each([
    { name: 'the active bundle', bundle: 'dist', which: () => digest },
    { name: 'a multi-chunk bundle that is not active', bundle: 'big', which: () => bigDigest },
  ])('FetchBundle streams $name; sha256 of the bytes is its digest', async ({ bundle, which }) => {
    const { data, sizes, chunks } = await fetchBundle(bundle, which());
    expect(createHash('sha256').update(data).digest('hex')).toBe(which());
    expect(chunks).toBe(Math.ceil(data.length / CHUNK_BYTES));
    expect(sizes[0]).toBe(String(data.length));
    expect(sizes.slice(1).every((s) => s === '0')).toBe(true);
  });

  it('the streamed bytes equal the REST download', async () => {
    const { data } = await fetchBundle('dist', digest);
    const rest = await t.pap.app.inject({
      url: '/v1/bundles/dist/bundle.tar.gz',
      headers: { authorization: 'Bearer test-admin-token-0123456789abcdef' },
    });
    expect(rest.rawPayload.equals(data)).toBe(true);
  });

  it.each([
    {
      name: 'an unknown bundle (GetActive)',
      call: () => unary(client, 'GetActive', { bundle: 'nope' }),
      code: 'not_found',
    },
    {
      name: 'a bad bundle name',
      call: () => unary(client, 'GetActive', { bundle: 'Bad!' }),
      code: 'validation_failed',
    },
    { name: 'an unknown digest', call: () => fetchBundle('dist', '0'.repeat(64)), code: 'not_found' },
    { name: 'a digest of another bundle', call: () => fetchBundle('inactive', bigDigest), code: 'not_found' },
    { name: 'a malformed digest', call: () => fetchBundle('dist', 'xyz'), code: 'validation_failed' },
  ])('refuses $name with $code', async ({ call, code }) => {
    const err = await call().then(
      () => undefined,
      (e: unknown) => e,
    );
    const mapped = err instanceof PortcullisError ? err : (err as grpc.ServiceError);
    const got =
      mapped instanceof PortcullisError ? mapped.code : mapped.metadata?.get('portcullis-error-code')[0];
    expect(got).toBe(code);
  });
});
