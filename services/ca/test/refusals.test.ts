// Every bad-CSR class and every authorization refusal, over real gRPC: the status, the reason, nothing issued, an audit row.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodePemCertificates, encodePem } from '@portcullis/pki';
import { CA_PROTOS, CaClient, CERTIFICATE_SERVICE } from '@portcullis/pki/ca-client';
import {
  grpc,
  isPortcullisError,
  loadProtos,
  type PortcullisError,
  serviceClient,
  unary,
} from '@portcullis/runtime';
import type { TestDatabase } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  csrFor,
  type RunningCa,
  run,
  type Shared,
  shared,
  startCa,
  workloadId,
} from './ca-fixture.ts';

const WEB = workloadId('default', 'web');
let s: Shared;
let ca: RunningCa;
let foreign: RunningCa;
const dbs: TestDatabase[] = [];
/** A key and chain for default/web from `ca`, and one from the foreign CA. */
let webCert: { keyPem: string; chainPem: string[] };
let foreignCert: { keyPem: string; chainPem: string[] };

beforeAll(async () => {
  s = await shared();
  const [a, b] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  dbs.push(a, b);
  [ca, foreign] = await Promise.all([startCa(a, s), startCa(b, s)]);
  const own = csrFor(WEB);
  webCert = {
    keyPem: own.keyPem,
    chainPem: await ca.tokenClient('default', 'web').createCertificate(own.csr),
  };
  const other = csrFor(WEB);
  foreignCert = {
    keyPem: other.keyPem,
    chainPem: await foreign.tokenClient('default', 'web').createCertificate(other.csr),
  };
});

afterAll(async () => {
  await Promise.all([ca?.close(), foreign?.close()]);
  await Promise.all(dbs.map((db) => db.drop()));
  await s?.cleanup();
});

async function refused(promise: Promise<unknown>): Promise<PortcullisError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isPortcullisError(error)) throw new Error(`expected a refusal, got ${String(error)}`);
  return error;
}

const grpcStatusOf = (error: PortcullisError) => grpc.status[(error.cause as { code: number }).code];

async function issuedCount(): Promise<number> {
  const { rows } = await ca.ca.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM ca_issuances');
  return rows[0]?.n ?? 0;
}

async function lastRefusal(): Promise<{ reason: string; actor: string | null; spiffe_id: string | null }> {
  const { rows } = await ca.ca.pool.query(
    "SELECT reason, actor, spiffe_id FROM ca_audit WHERE action = 'certificate.refused' ORDER BY id DESC LIMIT 1",
  );
  return rows[0];
}

/** An openssl-made CSR from a key of `algorithm` (genpkey options) with `-addext` values. */
async function opensslCsr(name: string, genpkey: string[], reqArgs: string[]): Promise<string> {
  const key = join(s.dir, `${name}.key`);
  const out = join(s.dir, `${name}.csr`);
  let result = await run('openssl', ['genpkey', ...genpkey, '-out', key], s.dir);
  if (result.code !== 0) throw new Error(result.stderr);
  result = await run(
    'openssl',
    ['req', '-new', '-key', key, '-subj', '/CN=x', '-out', out, ...reqArgs],
    s.dir,
  );
  if (result.code !== 0) throw new Error(result.stderr);
  return readFile(out, 'utf8');
}

const P256 = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];
const san = (value: string) => ['-addext', `subjectAltName=${value}`];

function tampered(csrPem: string): string {
  const der = Buffer.from(csrPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const last = der.length - 1;
  der[last] = (der[last] ?? 0) ^ 0x01;
  return encodePem(der, 'CERTIFICATE REQUEST');
}

describe('bad CSRs are refused with INVALID_ARGUMENT naming the problem', () => {
  const cases: [string, () => Promise<string> | string, string, number?][] = [
    ['not PEM or DER', () => 'hello, CA', 'csr_malformed'],
    [
      'a certificate instead of a CSR',
      () => encodePem(decodePemCertificates(webCert.chainPem[0] ?? '')[0] ?? Buffer.alloc(0), 'CERTIFICATE'),
      'csr_malformed',
    ],
    ['a self-signature that does not verify', () => tampered(csrFor(WEB).csr), 'csr_bad_signature'],
    ['an RSA-1024 key', () => csrFor(WEB, 'rsa-1024' as 'rsa-2048').csr, 'csr_weak_key'],
    [
      'a P-384 key',
      () =>
        opensslCsr('p384', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'], san(`URI:${WEB}`)),
      'csr_unsupported_key',
    ],
    [
      'an Ed25519 key',
      () => opensslCsr('ed25519', ['-algorithm', 'ed25519'], san(`URI:${WEB}`)),
      'csr_unsupported_key',
    ],
    [
      'a SHA-1 signature',
      () => opensslCsr('sha1', P256, ['-sha1', ...san(`URI:${WEB}`)]),
      'csr_unsupported_signature',
    ],
    ['no SAN', () => opensslCsr('nosan', P256, []), 'csr_bad_san'],
    [
      'two SPIFFE IDs',
      () => opensslCsr('twouri', P256, san(`URI:${WEB},URI:${workloadId('default', 'db')}`)),
      'csr_bad_san',
    ],
    [
      'a DNS SAN beside the SPIFFE ID',
      () => opensslCsr('dns', P256, san(`URI:${WEB},DNS:web.default.svc`)),
      'csr_bad_san',
    ],
    ['an IP SAN', () => opensslCsr('ip', P256, san(`URI:${WEB},IP:10.0.0.1`)), 'csr_bad_san'],
    ['an HTTPS URI', () => opensslCsr('https', P256, san('URI:https://web.default')), 'csr_bad_san'],
    ['another trust domain', () => csrFor('spiffe://other.domain/ns/default/sa/web').csr, 'csr_bad_san'],
    [
      'a SPIFFE ID that is not /ns/<ns>/sa/<sa>',
      () => opensslCsr('path', P256, san('URI:spiffe://cluster.local/workload/web')),
      'csr_bad_san',
    ],
    ['a lifetime above the maximum', () => csrFor(WEB).csr, 'ttl_too_long', 91 * 24 * 3600],
    ['a negative lifetime', () => csrFor(WEB).csr, 'ttl_invalid', -5],
    [
      'an oversized CSR',
      () => `-----BEGIN CERTIFICATE REQUEST-----\n${'A'.repeat(70_000)}\n-----END CERTIFICATE REQUEST-----\n`,
      'csr_too_large',
    ],
  ];

  const table = cases.map(([name, make, reason, ttl]) => ({ name, make, reason, ttl }));
  it.each(table)('$name → $reason', async ({ make, reason, ttl }) => {
    const before = await issuedCount();
    const error = await refused(ca.tokenClient('default', 'web').createCertificate(await make(), ttl ?? 0));
    expect(grpcStatusOf(error)).toBe('INVALID_ARGUMENT');
    expect(error.code).toBe('validation_failed');
    expect(error.message).toContain(`[${reason}]`);
    expect(error.message).not.toMatch(/BEGIN|MII/);
    expect(await issuedCount()).toBe(before);
    expect(await lastRefusal()).toMatchObject({ reason, actor: 'token:default/web' });
  });

  it('a message far above the CSR limit is refused by the transport before it is read', async () => {
    const error = await refused(ca.tokenClient('default', 'web').createCertificate('A'.repeat(200_000)));
    expect(grpcStatusOf(error)).toBe('RESOURCE_EXHAUSTED');
  });
});

describe('authorization refusals', () => {
  const now = Date.now();
  const cases: [string, () => CaClient, string, string, 'PERMISSION_DENIED' | 'UNAUTHENTICATED'][] = [
    [
      'a token for another service account than the CSR names',
      () => ca.tokenClient('default', 'db'),
      WEB,
      'identity_mismatch',
      'PERMISSION_DENIED',
    ],
    [
      'a token of another namespace',
      () => ca.tokenClient('prod', 'web'),
      WEB,
      'identity_mismatch',
      'PERMISSION_DENIED',
    ],
    [
      'an expired token',
      () =>
        tokenClient(() =>
          s.tokens.mint({ namespace: 'default', serviceAccount: 'web', now: now - 7200_000 }),
        ),
      WEB,
      'token_expired',
      'UNAUTHENTICATED',
    ],
    [
      'a token from another issuer',
      () =>
        tokenClient(() =>
          s.tokens.mint({ namespace: 'default', serviceAccount: 'web', issuer: 'https://elsewhere' }),
        ),
      WEB,
      'token_wrong_issuer',
      'UNAUTHENTICATED',
    ],
    [
      'a token for another audience',
      () =>
        tokenClient(() =>
          s.tokens.mint({ namespace: 'default', serviceAccount: 'web', audience: 'kubernetes' }),
        ),
      WEB,
      'token_wrong_audience',
      'UNAUTHENTICATED',
    ],
    [
      'a token signed by an unknown key',
      () => tokenClient(() => s.stranger.mint({ namespace: 'default', serviceAccount: 'web' })),
      WEB,
      'token_invalid',
      'UNAUTHENTICATED',
    ],
    [
      'a token that is not a JWT',
      () => tokenClient(() => 'not-a-jwt'),
      WEB,
      'token_invalid',
      'UNAUTHENTICATED',
    ],
    ['no credentials at all', () => tokenClient(() => undefined), WEB, 'no_credentials', 'UNAUTHENTICATED'],
    [
      'a client certificate from another CA (and no token)',
      () =>
        new CaClient({ address: ca.address, trustBundle: ca.bundle, clientCertificate: () => foreignCert }),
      WEB,
      'no_credentials',
      'UNAUTHENTICATED',
    ],
    [
      'a client certificate of this CA asking for another identity',
      () => new CaClient({ address: ca.address, trustBundle: ca.bundle, clientCertificate: () => webCert }),
      workloadId('default', 'db'),
      'identity_mismatch',
      'PERMISSION_DENIED',
    ],
  ];

  function tokenClient(token: () => string | undefined | Promise<string | undefined>): CaClient {
    return new CaClient({ address: ca.address, trustBundle: ca.bundle, token });
  }

  const table = cases.map(([name, client, spiffeId, reason, status]) => ({
    name,
    client,
    spiffeId,
    reason,
    status,
  }));
  it.each(table)('$name → $status $reason', async ({ client, spiffeId, reason, status }) => {
    const before = await issuedCount();
    const c = client();
    try {
      const error = await refused(c.createCertificate(csrFor(spiffeId).csr));
      expect(grpcStatusOf(error)).toBe(status);
      expect(error.message).toContain(`[${reason}]`);
      expect(await issuedCount()).toBe(before);
      const audit = await lastRefusal();
      expect(audit.reason).toBe(reason);
      // Once the caller is known, the audit names it and the identity it asked for.
      if (reason === 'identity_mismatch') expect(audit.spiffe_id).toBe(spiffeId);
    } finally {
      c.close();
    }
    const refusedMetric = await ca.ca.metrics.refused.get();
    expect(refusedMetric.values.find((v) => v.labels.reason === reason)?.value).toBeGreaterThanOrEqual(1);
  });

  it('a malformed authorization header is refused as token_invalid', async () => {
    const Client = serviceClient(loadProtos(CA_PROTOS), CERTIFICATE_SERVICE);
    const client = new Client(ca.address, grpc.credentials.createSsl(Buffer.from(ca.bundle().join(''))));
    const metadata = new grpc.Metadata();
    metadata.set('authorization', 'Basic d2ViOnNlY3JldA==');
    try {
      const error = await refused(
        unary(client, 'CreateCertificate', { csr: csrFor(WEB).csr, validity_duration: '0' }, { metadata }),
      );
      expect(grpcStatusOf(error)).toBe('UNAUTHENTICATED');
      expect(error.message).toContain('[token_invalid]');
    } finally {
      client.close();
    }
  });

  it('a valid client certificate renews without a token (mutual TLS)', async () => {
    const c = new CaClient({ address: ca.address, trustBundle: ca.bundle, clientCertificate: () => webCert });
    try {
      const chain = await c.createCertificate(csrFor(WEB).csr);
      expect(chain).toHaveLength(2);
      const { rows } = await ca.ca.pool.query(
        "SELECT caller, auth_method FROM ca_issuances WHERE caller LIKE 'mtls:%' ORDER BY issued_at DESC LIMIT 1",
      );
      expect(rows[0]).toEqual({ caller: `mtls:${WEB}`, auth_method: 'mtls' });
    } finally {
      c.close();
    }
  });
});

describe('a CA without token keys', () => {
  it('refuses tokens with token_not_accepted', async () => {
    const db = await createTestDatabase();
    const plain = await startCa(db, s, { CA_BOOTSTRAP_JWKS_FILE: '' });
    try {
      const error = await refused(plain.tokenClient('default', 'web').createCertificate(csrFor(WEB).csr));
      expect(error.message).toContain('[token_not_accepted]');
    } finally {
      await plain.close();
      await db.drop();
    }
  });
});
